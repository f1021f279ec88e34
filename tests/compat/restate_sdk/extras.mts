// Handlers the seed's examples do not have, for the tests of issue 16: a durable sleep between
// two steps, a counter object, an awakeable resolved from outside, and a counter object (the same as the Python SDK's, for side-by-side checks).
import * as restate from "@restatedev/restate-sdk";
import { appendFileSync } from "node:fs";

const log = (line: string) => {
  const tag = process.env.TAG ? ` ${process.env.TAG}` : "";
  if (process.env.STUB_LOG) appendFileSync(process.env.STUB_LOG, line + tag + "\n");
};

const timers = restate.service({
  name: "timers",
  handlers: {
    async nap(ctx: restate.Context, ms: number) {
      const before = await ctx.run("before", () => (log("before"), Date.now()));
      await ctx.sleep(ms);
      const after = await ctx.run("after", () => (log("after"), Date.now()));
      return { slept: after - before };
    },
  },
});

const tsCounter = restate.object({
  name: "tsCounter",
  handlers: {
    async add(ctx: restate.ObjectContext, n: number) {
      const value = ((await ctx.get<number>("value")) ?? 0) + n;
      ctx.set("value", value);
      return value;
    },
  },
});

const waiter = restate.service({
  name: "waiter",
  handlers: {
    async approval(ctx: restate.Context, name: string) {
      const { id, promise } = ctx.awakeable<string>();
      await ctx.run("publish-id", () => log(`awakeable ${name} ${id}`));
      return `approved: ${await promise}`;
    },
  },
});

const signup = restate.workflow({
  name: "tsSignup",
  handlers: {
    async run(ctx: restate.WorkflowContext, email: string) {
      const already = await ctx.promise<string>("code").peek();
      await ctx.run("send-code", () => log(`code sent to ${email}`));
      const code = await ctx.promise<string>("code").get();
      return { email, code, peeked: already ?? null };
    },
    async confirm(ctx: restate.WorkflowSharedContext, code: string) {
      await ctx.promise<string>("code").resolve(code);
      return "confirmed";
    },
  },
});

restate.endpoint().bind(signup).bind(timers).bind(tsCounter).bind(waiter).listen(Number(process.env.PORT ?? 9081));
