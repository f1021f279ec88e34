"""The plan of one run: the requests its clients send and the faults it suffers, all drawn from
the world's seeded generator, each with what the sequential model expects of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from perdure.engine.ids import InvocationId, idempotent_uid, parse_any_awakeable_id
from perdure.engine.model import Reply, Target
from perdure.engine.records import Cancel, Command, CompleteAwakeable, Envelope, Invoke, Response
from perdure.engine.subscriptions import record_key
from perdure.partitions.simulation.checks import Expectation
from perdure.partitions.simulation.workload import chain_value
from perdure.sdk.hosting import HandlerDef, encode, invocation_id_for

if TYPE_CHECKING:
    from perdure.partitions.simulation.world import World

KEYS = ("k0", "k1", "k2")
RETRY_S = 0.5
"""How long a client waits before sending a request again that the log refused."""


def plan(world: World) -> None:
    """Schedules the run's requests and faults on the world's loop."""
    r = world.rng
    o = world.options
    loop = asyncio.get_running_loop()
    kinds = ["chain"] * 8 + ["add"] * 4 + ["fan"] * 2 + ["flow"] * 2 + ["wait"] * 2
    kinds += ["rogue", "poison", "subscription", "subscription"]
    for n in range(o.steps):
        at = r.uniform(0, o.active_s * 0.8)
        kind = r.choice(kinds)
        loop.call_at(at, _REQUESTS[kind], world, n)
    if not o.faults:
        return
    for _ in range(r.randint(0, 3)):
        loop.call_at(r.uniform(0.5, o.active_s), _crash, world, r.choice(world.workers))
    for _ in range(r.randint(0, 2)):
        loop.call_at(r.uniform(0.5, o.active_s), _pause, world, r.choice(world.workers))
    for _ in range(r.randint(0, 2)):
        loop.call_at(r.uniform(0.5, o.active_s), _cut, world, r.choice(world.workers))
    if r.random() < 0.3:
        loop.call_at(r.uniform(0.5, o.active_s), _outage, world)


# -- faults -----------------------------------------------------------------------------------


def _crash(world: World, worker: Any) -> None:
    if not worker.alive:
        return
    world.faults_injected += 1
    worker.crash(lose_disk=world.chance() < 0.3)
    asyncio.get_running_loop().call_later(world.between(200, 5000) / 1000, _restart, worker)


def _restart(worker: Any) -> None:
    if not worker.alive:
        worker.start()


def _pause(world: World, worker: Any) -> None:
    loop = asyncio.get_running_loop()
    world.faults_injected += 1
    worker.paused_until = loop.time() + world.between(500, 8000) / 1000
    world.event(f"{worker.token} paused until {worker.paused_until:.3f}")


def _cut(world: World, worker: Any) -> None:
    loop = asyncio.get_running_loop()
    world.faults_injected += 1
    worker.cut_until = loop.time() + world.between(1000, 9000) / 1000
    world.event(f"{worker.token} cut off from the coordinator until {worker.cut_until:.3f}")


def _outage(world: World) -> None:
    loop = asyncio.get_running_loop()
    world.faults_injected += 1
    world.log.outage_until = loop.time() + world.between(200, 3000) / 1000
    world.event(f"log: outage until {world.log.outage_until:.3f}")


# -- requests ---------------------------------------------------------------------------------


def _handler(world: World, service: str, name: str) -> HandlerDef:
    return world.app.services[service].handlers[name]


def _send(
    world: World,
    what: str,
    h: HandlerDef,
    arg: Any,
    key: str | None,
    check: Callable[[Response], str | None] | None,
    *,
    idempotency_key: str | None = None,
    reply: bool = True,
    delay_ms: int = 0,
    raw_input: bytes | None = None,
    rejected: bool = False,
) -> str:
    """Sends an invoke until the log takes it; the model's expectation counts from then."""
    uid = (
        idempotent_uid(h.service, h.name, key, idempotency_key)
        if idempotency_key
        else world.rng.randbytes(16)
    )
    inv = invocation_id_for(h, key, uid)
    body = raw_input if raw_input is not None else encode(arg, h.input_type)
    request = Reply(0, f"r-{world.rng.getrandbits(64):016x}") if reply else None
    record = Invoke(
        str(inv),
        Target(h.service, h.name, key),
        body,
        request,
        idempotency_key,
        False,
        (),
        h.invocation_kind,
        delay_ms=delay_ms,
    )
    partition = inv.partition(world.options.partitions)
    expectation = None if check is None else Expectation(str(inv), partition, what, check, rejected)
    _append(world, partition, record, expectation)
    return str(inv)


def _append(world: World, partition: int, record: Command, expectation: Expectation | None) -> None:
    world.unsent += 1
    world.unsent_records.append(record)

    def delivered(err: object) -> None:
        world.unsent -= 1
        world.unsent_records.remove(record)
        if err is None:
            if expectation is not None and expectation not in world.expectations:
                world.expectations.append(expectation)
            return
        asyncio.get_running_loop().call_later(
            RETRY_S, _append, world, partition, record, expectation
        )

    world.ingress.append(partition, Envelope(record), delivered)


def _ok(value: Any) -> Callable[[Response], str | None]:
    def check(response: Response) -> str | None:
        if response.failure is not None:
            return f"failed {response.failure.code} {response.failure.message!r}, model: {value!r}"
        got = None if response.result is None else json.loads(response.result)
        return None if got == value else f"returned {got!r}, model: {value!r}"

    return check


def _fails(code: int, or_value: Any = None) -> Callable[[Response], str | None]:
    def check(response: Response) -> str | None:
        if response.failure is not None:
            ok = response.failure.code == code or (code == 409 and response.failure.code >= 400)
            return None if ok else f"failed {response.failure.code}, model: {code}"
        if or_value is not None:
            return _ok(or_value)(response)
        return f"succeeded with {response.result!r}, model: a {code} failure"

    return check


def _chain(world: World, n: int) -> None:
    r = world.rng
    spec: dict[str, Any] = {"n": r.randint(0, 4)}
    if r.random() < 0.4:
        spec["sleep_ms"] = r.choice([5, 100, 1500, 4000])
    if r.random() < 0.5:
        spec["publish"] = True
    if r.random() < 0.15:
        spec["flaky"] = True
    fail = r.random() < 0.1
    if fail:
        spec["fail"] = True
    value = chain_value(spec["n"], bool(spec.get("publish")))
    check = _fails(422) if fail else _ok(value)
    cancel = "sleep_ms" in spec and r.random() < 0.3
    if cancel:
        check = _fails(409, or_value=None if fail else value)
    inv = _send(
        world,
        f"request {n}: steps.chain {spec}",
        _handler(world, "steps", "chain"),
        spec,
        None,
        check,
    )
    if spec.get("publish") and not fail and not cancel:
        world.must_publish.add(inv)
    if cancel:
        kill = r.random() < 0.5
        partition = InvocationId.parse(inv).partition(world.options.partitions)
        asyncio.get_running_loop().call_later(
            r.uniform(0.0, 3.0), _append, world, partition, Cancel(inv, kill), None
        )


def _counted(world: World, key: str, inv: str) -> None:
    """``inv``'s answer is one of counter ``key``'s adds (its own, or the one it called)."""
    partition = InvocationId.parse(inv).partition(world.options.partitions)
    world.counters.setdefault(key, set()).add((partition, inv))


def _add(world: World, n: int) -> None:
    key = world.rng.choice(KEYS)
    h = _handler(world, "counter", "add")
    inv = _send(world, f"request {n}: counter.add {key}", h, 1, key, lambda _r: None)
    _counted(world, key, inv)


def _rogue(world: World, n: int) -> None:
    key = world.rng.choice(KEYS)
    h = _handler(world, "counter", "rogue")
    _send(world, f"request {n}: counter.rogue {key}", h, None, key, _fails(400), raw_input=b"")


def _fan(world: World, n: int) -> None:
    spec = {"key": world.rng.choice(KEYS), "delay_ms": world.rng.choice([0, 50, 2000])}
    h = _handler(world, "caller", "fan")

    def check(response: Response) -> str | None:
        return None if response.failure is None else f"failed {response.failure.message!r}"

    inv = _send(world, f"request {n}: caller.fan {spec}", h, spec, None, check)
    _counted(world, str(spec["key"]), inv)  # it answers what the add it called answered


def _flow(world: World, n: int) -> None:
    r = world.rng
    key = f"w{n}"
    x, v = r.randint(0, 100), r.randint(0, 100)
    _send(world, f"request {n}: flow.run {key}", _handler(world, "flow", "run"), x, key, _ok(x + v))
    signal = _handler(world, "flow", "signal")
    asyncio.get_running_loop().call_later(
        r.uniform(0.0, 4.0),
        lambda: _send(world, f"request {n}: flow.signal {key}", signal, v, key, None),
    )


def _wait(world: World, n: int) -> None:
    x = world.rng.randint(0, 100)
    h = _handler(world, "waiter", "wait")
    inv = _send(world, f"request {n}: waiter.wait", h, x, None, _ok(f"{x}:v{x}"))
    world.wait_inputs[inv] = x


def resolve_later(world: World, invocation_id: str, awakeable_id: str) -> None:
    """A person answers an awakeable a while after a handler registered it (maybe twice)."""
    if awakeable_id in world.awakeables_seen:
        return
    world.awakeables_seen.add(awakeable_id)
    inv, index = parse_any_awakeable_id(awakeable_id)
    value = encode(f"v{world.wait_inputs.get(invocation_id, -1)}")
    partition = InvocationId.parse(inv).partition(world.options.partitions)
    record = CompleteAwakeable(inv, index, value, None, Reply(0, f"a-{awakeable_id}"))
    asyncio.get_running_loop().call_later(
        world.rng.uniform(0.0, 3.0), _append, world, partition, record, None
    )


def _poison(world: World, n: int) -> None:
    """A record an older edge could have written: a delay past the key format."""
    h = _handler(world, "steps", "chain")
    _send(
        world,
        f"request {n}: poison",
        h,
        {"n": 1},
        None,
        _fails(400),
        delay_ms=2**63 - 1,
        rejected=True,
    )


def _subscription(world: World, n: int) -> None:
    """A Kafka record through a subscription: its invoke, delivered twice (the subscriber
    crashed before committing its offset)."""
    key = world.rng.choice(KEYS)
    idem = record_key("sim-sub", "sim.in", 0, n)
    h = _handler(world, "counter", "add")
    for copy in range(2):
        inv = _send(
            world,
            f"request {n}: event {copy}",
            h,
            1,
            key,
            lambda _r: None,
            idempotency_key=idem,
            reply=False,
        )
    _counted(world, key, inv)


_REQUESTS: dict[str, Callable[[World, int], None]] = {
    "chain": _chain,
    "add": _add,
    "rogue": _rogue,
    "fan": _fan,
    "flow": _flow,
    "wait": _wait,
    "poison": _poison,
    "subscription": _subscription,
}
