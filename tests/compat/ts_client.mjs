// Drives a Perdure ingress with Restate's official TypeScript client; prints one JSON line per
// case: {"case": name, "ok": value} or {"case": name, "error": message}.
// Usage: node ts_client.mjs URL LEDGER MAILBOX
import * as clients from "@restatedev/restate-sdk-clients";
import { readFileSync, existsSync } from "node:fs";

const [url, ledger, mailbox] = process.argv.slice(2);
const rs = clients.connect({ url });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function lineOf(prefix) {
  for (let i = 0; i < 200; i++) {
    if (existsSync(ledger)) {
      const hit = readFileSync(ledger, "utf8").split("\n").find((l) => l.startsWith(prefix));
      if (hit) return hit.split("\t");
    }
    await sleep(100);
  }
  throw new Error(`no ledger line ${prefix}`);
}

const cases = {
  service_call: () => rs.serviceClient({ name: "tests" }).echo({ a: 1 }),
  object_key_with_slash: async () => {
    const c = rs.objectClient({ name: "counter" }, "ts/a b");
    await c.add(2);
    return c.get();
  },
  object_empty_key: async () => {
    const c = rs.objectClient({ name: "counter" }, "");
    await c.add(3);
    return c.get();
  },
  send_with_delay_and_result: async () => {
    const handle = await rs
      .serviceSendClient({ name: "tests" })
      .echo("later", clients.rpc.sendOpts({ delay: { milliseconds: 300 }, idempotencyKey: "ts-d" }));
    return rs.result(handle);
  },
  idempotency_key: async () => {
    const c = rs.serviceClient({ name: "tests" });
    const first = await c.echo("first", clients.rpc.opts({ idempotencyKey: "ts-k" }));
    const second = await c.echo("second", clients.rpc.opts({ idempotencyKey: "ts-k" }));
    return [first, second];
  },
  generic_call_and_send: async () => {
    const out = await rs.call({ service: "tests", handler: "echo", parameter: "g" });
    const sent = await rs.send({ service: "counter", handler: "add", key: "gen", parameter: 4 });
    return [out, sent.invocationId.startsWith("inv_")];
  },
  awakeable_resolve: async () => {
    await rs.serviceSendClient({ name: "tests" }).wait_awakeable("ts-awk");
    const [, , id] = await lineOf("awakeable\tts-awk\t");
    await rs.resolveAwakeable(id, "yes");
    return "resolved";
  },
  workflow: async () => {
    const wf = rs.workflowClient({ name: "signup" }, "ts-wf");
    const submission = await wf.workflowSubmit({ email: "ts@example.com" });
    let status = null;
    for (let i = 0; i < 100 && status !== "waiting for verification"; i++) {
      status = await wf.status();
      if (status !== "waiting for verification") await sleep(100);
    }
    const code = readFileSync(`${mailbox}/ts@example.com`, "utf8");
    await wf.verify(code);
    const out = await wf.workflowAttach();
    return [submission.invocationId.startsWith("inv_"), status, out.verified];
  },
  workflow_submit_with_idempotency_key: async () => {
    try {
      await rs
        .workflowClient({ name: "signup" }, "ts-wf-idem")
        .workflowSubmit({ email: "x@example.com" }, clients.rpc.sendOpts({ idempotencyKey: "i" }));
      return "accepted";
    } catch (err) {
      return String(err.message);
    }
  },
  scoped_call: () => rs.scope("tenant-1").serviceClient({ name: "tests" }).echo("scoped"),
  scoped_state: async () => {
    await rs.scope("tenant 2").objectClient({ name: "counter" }, "k").add(7);
    const inScope = await rs.scope("tenant 2").objectClient({ name: "counter" }, "k").get();
    const outside = await rs.objectClient({ name: "counter" }, "k").get();
    return [inScope, outside];
  },
};

for (const [name, run] of Object.entries(cases)) {
  try {
    console.log(JSON.stringify({ case: name, ok: await run() }));
  } catch (err) {
    console.log(JSON.stringify({ case: name, error: String(err && err.message ? err.message : err) }));
  }
}
