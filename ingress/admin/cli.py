"""The operators' commands: ``perdure services|invocations|state|subscriptions|deployments ...``.

They talk to the admin API (``--admin-url``, ``PERDURE_ADMIN_URL``, else
``http://127.0.0.1:9070``) and print tables for people (aligned, ages like ``3m``) or, with
``--json``, the API's own answers for scripts. ``--token`` (``PERDURE_ADMIN_TOKEN``) is the
admin's bearer token. Exit codes: 0 done, 1 the admin refused (its
message is printed), 2 the admin cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import httpx

DEFAULT_ADMIN_URL = "http://127.0.0.1:9070"


class AdminUnreachable(Exception):
    """The admin API did not answer."""


class AdminRefused(Exception):
    """The admin API answered with an error (its message is the exception's)."""


class AdminClient:
    """A small client of the admin API."""

    def __init__(self, url: str, token: str = "", timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, json_body: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            r = httpx.request(
                method,
                self.url + path,
                params=query,
                json=json_body,
                headers=self.headers,
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as err:
            raise AdminUnreachable(
                f"the admin API at {self.url} does not answer ({err}); is `perdure admin` "
                "running? (--admin-url, PERDURE_ADMIN_URL)"
            ) from None
        if r.status_code >= 400:
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            raise AdminRefused(f"{r.status_code}: {message}")
        return r.json() if r.content else {}


def age(ms: int | None, now_ms: int | None = None) -> str:
    """How long ago ``ms`` was, short: ``42s``, ``3m``, ``5h``, ``2d`` (``-`` for none)."""
    if ms is None:
        return "-"
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    seconds = max(0, (now_ms - ms) // 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(rows: Sequence[Sequence[object]], header: Sequence[str], out: TextIO) -> None:
    """Prints aligned columns (the last one is not padded)."""
    cells = [[str(h) for h in header]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        out.write("  ".join(padded).rstrip() + "\n")


def _target(row: dict[str, Any]) -> str:
    key = f"/{row['key']}" if row.get("key") is not None else ""
    return f"{row['service']}{key}/{row['handler']}"


# --- the commands ----------------------------------------------------------------------------


def services_ls(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    doc = client.request("GET", "/services")
    if args.json:
        return doc
    rows = [
        (s["name"], s["kind"], ", ".join(h["name"] for h in s["handlers"]), s.get("worker"))
        for s in doc["services"]
    ]
    table(rows, ("SERVICE", "KIND", "HANDLERS", "REGISTERED BY"), out)
    return None


def cluster_placement(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    doc = client.request("GET", "/cluster")
    if args.json:
        return doc
    rows = [
        (w["worker"], w["host"], len(w["partitions"]), ",".join(map(str, w["partitions"])))
        for w in doc["workers"]
    ]
    table(rows, ("WORKER", "HOST", "COUNT", "PARTITIONS"), out)
    balance = "balanced" if doc["balanced"] else "NOT balanced"
    unassigned = ",".join(map(str, doc["unassigned"])) or "none"
    out.write(
        f"{doc['partitions']} partitions, {len(doc['workers'])} workers, group {doc['state']},"
        f" {balance}; unassigned: {unassigned}\n"
    )
    for b in doc.get("blocked", []):
        out.write(f"partition {b['partition']} BLOCKED: {b['why']}\n")
    return None


def invocations_ls(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.request(
            "GET",
            "/invocations",
            status=args.status,
            service=args.service,
            handler=args.handler,
            key=args.key,
            created_after=args.created_after,
            created_before=args.created_before,
            limit=min(args.limit - len(rows), 500),
            cursor=cursor,
        )
        rows += page["invocations"]
        cursor = page["next_cursor"]
        if cursor is None or len(rows) >= args.limit:
            break
    rows.sort(key=lambda r: r["created_ms"], reverse=True)
    if args.json:
        return {"invocations": rows, "more": cursor is not None}
    now = int(time.time() * 1000)
    table(
        [
            (
                r["id"],
                _target(r),
                r["status"],
                age(r["created_ms"], now),
                r["attempts"],
                (r.get("last_error") or (r.get("failure") or {}).get("message") or "")[:60],
            )
            for r in rows
        ],
        ("ID", "TARGET", "STATUS", "AGE", "ATTEMPTS", "ERROR"),
        out,
    )
    if cursor is not None:
        out.write(f"(more than {len(rows)}: --limit to see more)\n")
    return None


def invocations_describe(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    doc = client.request("GET", f"/invocations/{args.id}", results=str(args.results).lower())
    if args.json:
        return doc
    now = int(time.time() * 1000)
    lines = [
        ("id", doc["id"]),
        ("target", _target(doc)),
        ("status", doc["status"]),
        ("created", f"{age(doc['created_ms'], now)} ago"),
        ("completed", f"{age(doc['completed_ms'], now)} ago" if doc.get("completed_ms") else "-"),
        ("attempts", doc["attempts"]),
        ("partition", doc.get("partition")),
    ]
    if doc.get("idempotency_key"):
        lines.append(("idempotency key", doc["idempotency_key"]))
    if doc.get("last_error"):
        lines.append(("last error", doc["last_error"]))
    if doc.get("next_attempt_ms"):
        lines.append(("next attempt", f"in {max(0, doc['next_attempt_ms'] - now) // 1000}s"))
    if doc.get("failure"):
        lines.append(("failure", f"{doc['failure']['code']} {doc['failure']['message']}"))
    if "result" in doc:
        lines.append(("result", _shown(doc["result"])))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        out.write(f"{k.ljust(width)}  {v}\n")
    out.write("\njournal:\n")
    rows = []
    for e in doc["journal"]:
        detail = ""
        if e.get("failure"):
            detail = f"failed {e['failure']['code']}: {e['failure']['message']}"
        elif "result" in e:
            detail = _shown(e["result"])
        elif "wake_at_ms" in e:
            detail = f"wakes in {max(0, e['wake_at_ms'] - now) // 1000}s"
        elif "call" in e:
            detail = f"-> {_target(e['call'])} {e.get('callee', '')}"
        rows.append((e["index"], e["kind"], e["name"], e["status"], detail))
    table(rows, ("#", "KIND", "NAME", "STATUS", "DETAIL"), out)
    return None


def _shown(payload: dict[str, Any]) -> str:
    text = str(payload.get("text", payload.get("base64", "")))
    return text[:80] + ("..." if payload.get("truncated") or len(text) > 80 else "")


def invocations_end(mode: str) -> Callable[[AdminClient, argparse.Namespace, TextIO], Any]:
    def run(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
        if mode == "retry-now":
            doc = client.request("PATCH", f"/invocations/{args.id}/retry-now")
        else:
            doc = client.request("DELETE", f"/invocations/{args.id}", mode=mode)
        if args.json:
            return doc
        out.write(f"{args.id}: {mode} requested\n")
        return None

    return run


def state_get(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    doc = client.request("GET", f"/services/{args.service}/state/{args.key}")
    if args.json:
        return doc
    table(
        [(name, _shown(value)) for name, value in sorted(doc["state"].items())],
        ("NAME", "VALUE"),
        out,
    )
    out.write(f"(version {doc['version']}, held by {doc.get('locked_by') or 'nobody'})\n")
    return None


def subscriptions_ls(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    doc = client.request("GET", "/subscriptions")
    if args.json:
        return doc
    rows = []
    for s in doc["subscriptions"]:
        status = s.get("status", {})
        rows.append((s["id"], s["source"], s["sink"], status.get("state", "-"), status.get("lag")))
    table(rows, ("ID", "SOURCE", "SINK", "STATE", "LAG"), out)
    return None


def deployments_register(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    body = {"uri": args.uri, "force": args.force}
    doc = client.request("POST", "/deployments", json_body=body)
    if args.json:
        return doc
    services = ", ".join(s["name"] for s in doc["services"])
    out.write(f"deployment {doc['id']} at {doc['uri']} (HTTP/{doc['http_version']}): {services}\n")
    return None


def deployments_ls(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    doc = client.request("GET", "/deployments")
    if args.json:
        return doc
    rows = []
    for d in doc["deployments"]:
        names = [s["name"] + ("" if s["current"] else " (replaced)") for s in d["services"]]
        rows.append((d["id"], d["uri"], age(d["created_at_ms"]), ", ".join(names)))
    table(rows, ("ID", "URI", "AGE", "SERVICES"), out)
    return None


def deployments_remove(client: AdminClient, args: argparse.Namespace, out: TextIO) -> Any:
    client.request("DELETE", f"/deployments/{args.id}")
    if not args.json:
        out.write(f"deployment {args.id} removed\n")
    return None


# --- wiring ----------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Adds the operators' commands to the ``perdure`` parser's subparsers."""

    def with_common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--admin-url", help=f"[PERDURE_ADMIN_URL, else {DEFAULT_ADMIN_URL}]")
        p.add_argument("--json", action="store_true", help="the API's answer, for scripts")
        p.add_argument("--token", help="the admin API's bearer token [PERDURE_ADMIN_TOKEN]")
        return p

    services = sub.add_parser("services", help="services the workers host").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    with_common(services.add_parser("ls", help="list services")).set_defaults(run=services_ls)

    placement = sub.add_parser("cluster", help="which worker leads which partitions")
    with_common(placement).set_defaults(run=cluster_placement)

    inv = sub.add_parser("invocations", help="see and control invocations").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    ls = with_common(inv.add_parser("ls", help="list invocations, newest first"))
    ls.add_argument("--status", help="comma-separated, e.g. running,backing-off")
    ls.add_argument("--service")
    ls.add_argument("--handler")
    ls.add_argument("--key")
    ls.add_argument("--created-after", help="ms since the epoch or ISO 8601")
    ls.add_argument("--created-before", help="ms since the epoch or ISO 8601")
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(run=invocations_ls)
    describe = with_common(inv.add_parser("describe", help="one invocation and its journal"))
    describe.add_argument("id")
    describe.add_argument("--results", action="store_true", help="with results (cut at 16 KiB)")
    describe.set_defaults(run=invocations_describe)
    helps = {
        "cancel": "cancel an invocation (it sees a 409 where it waits)",
        "kill": "kill an invocation (it ends at once)",
        "purge": "forget a completed invocation now",
        "retry-now": "start the next attempt of a backing-off invocation now",
    }
    for mode, text in helps.items():
        p = with_common(inv.add_parser(mode, help=text))
        p.add_argument("id")
        p.set_defaults(run=invocations_end(mode))

    state = sub.add_parser("state", help="state of objects and workflows").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    get = with_common(state.add_parser("get", help="every value of one key"))
    get.add_argument("service")
    get.add_argument("key")
    get.set_defaults(run=state_get)

    subs = sub.add_parser("subscriptions", help="Kafka topics feeding handlers").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    with_common(subs.add_parser("ls", help="list subscriptions")).set_defaults(run=subscriptions_ls)

    deps = sub.add_parser(
        "deployments", help="endpoints of Restate SDKs whose services Perdure runs"
    ).add_subparsers(dest="action", metavar="ACTION", required=True)
    reg = with_common(deps.add_parser("register", help="register an endpoint by its URL"))
    reg.add_argument("uri", help="e.g. http://127.0.0.1:9080")
    reg.add_argument("--force", action="store_true", help="take over services workers host")
    reg.set_defaults(run=deployments_register)
    with_common(deps.add_parser("ls", help="list deployments")).set_defaults(run=deployments_ls)
    rm = with_common(deps.add_parser("remove", help="remove a deployment"))
    rm.add_argument("id")
    rm.set_defaults(run=deployments_remove)


COMMANDS = ("services", "cluster", "invocations", "state", "subscriptions", "deployments")


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Runs a parsed operator command; returns the exit code."""
    url = args.admin_url or os.environ.get("PERDURE_ADMIN_URL") or DEFAULT_ADMIN_URL
    try:
        token = args.token or os.environ.get("PERDURE_ADMIN_TOKEN", "")
        doc = args.run(AdminClient(url, token), args, out)
    except AdminUnreachable as e:
        err.write(f"perdure: {e}\n")
        return 2
    except AdminRefused as e:
        err.write(f"perdure: {e}\n")
        return 1
    if doc is not None:
        out.write(json.dumps(doc, indent=2) + "\n")
    return 0
