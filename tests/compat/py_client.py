"""Drives a Perdure ingress with Restate's official Python client (restate-sdk[client]).

Prints one JSON line per case: {"case": name, "ok": value} or {"case": name, "error": message}.
Usage: python py_client.py URL LEDGER MAILBOX  (with restate-sdk installed, not Perdure's venv)
"""

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

from restate.client import create_client

URL, LEDGER, MAILBOX = sys.argv[1:4]


def enc(value):
    return json.dumps(value).encode()


def ledger_line(prefix):
    path = Path(LEDGER)
    lines = path.read_text().splitlines() if path.exists() else []
    return next((line.split("\t") for line in lines if line.startswith(prefix)), None)


async def line_of(prefix):
    for _ in range(200):
        found = ledger_line(prefix)
        if found:
            return found
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no ledger line {prefix}")


async def main():
    async with create_client(URL) as rs:

        async def call(service, handler, arg, key=None, **kw):
            return json.loads(await rs.generic_call(service, handler, enc(arg), key=key, **kw))

        async def object_key():
            await call("counter", "add", 2, key="py a+b")
            return await call("counter", "get", None, key="py a+b")

        async def empty_key():
            await call("counter", "add", 3, key="")
            return await call("counter", "get", None, key="")

        async def send_with_delay():
            handle = await rs.generic_send(
                "tests", "echo", enc("later"), send_delay=timedelta(milliseconds=300)
            )
            return handle.invocation_id.startswith("inv_")

        async def idempotency_key():
            first = await call("tests", "echo", "first", idempotency_key="py-k")
            second = await call("tests", "echo", "second", idempotency_key="py-k")
            return [first, second]

        async def awakeable():
            await rs.generic_send("tests", "wait_awakeable", enc("py-awk"))
            _, _, awakeable_id = await line_of("awakeable\tpy-awk\t")
            res = await rs.client.post(f"restate/awakeables/{awakeable_id}/resolve", content=b'"y"')
            return res.status_code

        async def scoped():
            return json.loads(
                await rs.generic_call("tests", "echo", enc("scoped"), scope="tenant-1")
            )

        cases = {
            "service_call": lambda: call("tests", "echo", {"a": 1}),
            "object_key": object_key,
            "object_empty_key": empty_key,
            "send_with_delay": send_with_delay,
            "idempotency_key": idempotency_key,
            "awakeable_resolve": awakeable,
            "scoped_call": scoped,
        }
        for name, run in cases.items():
            try:
                print(json.dumps({"case": name, "ok": await run()}), flush=True)
            except Exception as err:  # every failure is a result here
                print(json.dumps({"case": name, "error": repr(err)}), flush=True)


asyncio.run(main())
