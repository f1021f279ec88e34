// Handlers the seed's examples do not have, for the tests of issue 16: a durable sleep between
// two steps, a counter object (the same as the Python SDK's, for side-by-side checks), an
// awakeable resolved from outside, a workflow promise, and retry policies set in the code.
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

// Attempts per handler and input, in this process (a kill of node starts them again).
const tries = new Map<string, number>();
const attempt = (name: string) => {
  const n = (tries.get(name) ?? 0) + 1;
  tries.set(name, n);
  log(`attempt ${name} ${n}`);
  return n;
};

// The service's policy: two attempts 50 ms apart, then fail. `paused` overrides only what
// happens after the last attempt; `stepDelay` takes more attempts, and its step asks for its own
// delay between them (the SDK's next_retry_delay).
const retrying = restate.service({
  name: "retrying",
  options: { retryPolicy: { maxAttempts: 2, initialInterval: 50, onMaxAttempts: "kill" } },
  handlers: {
    killed: async (ctx: restate.Context, name: string) => {
      attempt(`killed-${name}`);
      throw new Error("always fails");
    },
    paused: restate.handlers.handler(
      { retryPolicy: { onMaxAttempts: "pause" } },
      async (ctx: restate.Context, name: string) => {
        if (attempt(`paused-${name}`) < 3) throw new Error("fails twice");
        return "third time";
      },
    ),
    stepDelay: restate.handlers.handler(
      { retryPolicy: { maxAttempts: 5 } },
      async (ctx: restate.Context, name: string) =>
        ctx.run(
          "flaky",
          () => {
            if (attempt(`step-${name}`) < 2) throw new Error("the step fails once");
            return "step done";
          },
          { initialRetryInterval: 1500, maxRetryAttempts: 3 },
        ),
    ),
  },
});

restate.endpoint().bind(retrying).bind(signup).bind(timers).bind(tsCounter).bind(waiter).listen(Number(process.env.PORT ?? 9081));
