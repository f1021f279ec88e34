// three_steps on Restate's TypeScript SDK: the twin of bench/app.py's and bench/restate/app.py's.
// Served by node and registered with both Perdure and the Restate server (bench/remote_sdk.py).
import * as restate from "@restatedev/restate-sdk";

const tsbench = restate.service({
  name: "tsbench",
  handlers: {
    async three_steps(ctx: restate.Context, value: number) {
      const a = await ctx.run("one", async () => value + 1);
      const b = await ctx.run("two", async () => a + 1);
      return await ctx.run("three", async () => b + 1);
    },
  },
});

restate.endpoint().bind(tsbench).listen(Number(process.env.PORT ?? 9080));
