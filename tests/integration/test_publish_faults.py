"""ctx.publish through a frozen zombie and kill -9s: one record per publish, read_committed."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.cluster import Cluster, free_port, serving, wait_until
from tests.integration.test_publish import APP, mirror_env, read_topic
from tests.integration.test_recovery import freeze_at
from tests.integration.test_subscriptions import make_topic

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]

CALLS = 120
PER_CALL = 3


def test_every_publish_appears_once_through_a_zombie_and_a_kill_9(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    c = cluster_factory(app=APP)
    # a freezes inside its first publish transaction: the record and its journal entry are
    # produced, the commit is not.
    a = c.start_worker("a", env={"PERDURE_FAULT_STOP_AT": "publish-before-commit"})
    c.start_ingress()
    c.wait_leading(a)
    topic = make_topic(c.bootstrap, unique_name("out"), partitions=3)
    results: dict[int, httpx.Response] = {}
    finished = threading.Event()

    def emit(n: int) -> httpx.Response:
        body = {"topic": topic, "id": n, "count": PER_CALL}
        return httpx.post(f"{c.url}/emitter/emit", json=body, timeout=240)

    def run() -> None:
        with ThreadPoolExecutor(12) as pool:
            for n, r in zip(range(CALLS), pool.map(emit, range(CALLS)), strict=True):
                results[n] = r
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    freeze_at(a, "publish-before-commit")

    # b takes the partitions over; its producers fence a's, whose open transaction is aborted.
    b = c.start_worker("b")
    c.wait_leading(b)
    seen = len(a.log())
    a.signal(signal.SIGCONT)
    wait_until(
        lambda: "its publish producer stops" in a.log()[seen:] or not a.alive(),
        60,
        "the zombie's commit to be refused",
    )

    def published() -> int:
        return len(read_topic(c.bootstrap, topic))

    wait_until(lambda: published() >= CALLS, 120, "a third of the records")
    b.kill9()
    a.stop()
    d = c.start_worker("d")
    c.wait_leading(d)
    assert finished.wait(240), f"only {len(results)} of {CALLS} calls answered"
    assert all(r.status_code == 200 for r in results.values()), [
        r.text for r in results.values() if r.status_code != 200
    ][:3]

    committed = read_topic(c.bootstrap, topic)
    per_call = Counter(json.loads(m.value() or b"")["id"] for m in committed)
    exact = Counter(
        (json.loads(m.value() or b"")["id"], json.loads(m.value() or b"")["i"]) for m in committed
    )
    assert max(exact.values()) == 1, [k for k, n in exact.items() if n > 1][:5]
    assert per_call == {n: PER_CALL for n in range(CALLS)}
    # The frozen transaction was there and was aborted: a read_uncommitted reader sees more.
    uncommitted = read_topic(c.bootstrap, topic, isolation="read_uncommitted")
    assert len(uncommitted) > len(committed), "the zombie's record was never written"


def test_forwarding_to_another_cluster_is_exactly_once_through_a_frozen_forwarder(
    cluster_factory: Callable[..., Cluster],
    unique_name: Callable[[str], str],
    kafka_bootstrap: str,
) -> None:
    """The forwarder freezes inside a transaction to the other cluster (records and position
    produced, not committed); a second admin takes its partitions over and fences it; woken,
    its commit is refused. Then the second one is killed -9 and a third finishes."""
    c = serving(cluster_factory, app=APP, env=mirror_env(kafka_bootstrap))
    zombie = c.start_admin(
        "admin-1", port=free_port(), env={"PERDURE_FAULT_STOP_AT": "forward-before-commit"}
    )
    topic = make_topic(c.bootstrap, unique_name("mirrored"), partitions=2)
    calls = 40

    def emit(n: int) -> httpx.Response:
        body = {"topic": topic, "id": n, "count": PER_CALL, "cluster": "mirror"}
        return httpx.post(f"{c.url}/emitter/emit", json=body, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(emit, range(calls)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers][:3]
    freeze_at(zombie, "forward-before-commit")

    heir = c.start_admin("admin-2", port=free_port())

    def forwarded() -> int:
        return len(read_topic(c.bootstrap, topic))

    wait_until(lambda: forwarded() >= 1, 60, "the heir to forward")
    seen = len(zombie.log())
    zombie.signal(signal.SIGCONT)
    try:
        wait_until(
            lambda: "starting again from the positions" in zombie.log()[seen:],
            60,
            "the zombie's commit to be refused",
        )
    except AssertionError as err:
        raise AssertionError(
            f"{err}; the zombie since SIGCONT:\n{zombie.log()[seen:][-4000:]}"
        ) from err
    heir.kill9()
    c.start_admin("admin-3", port=free_port())
    # Every record forwarded: the zombie is fenced and the second admin dead, and the third
    # forwards each outbox record once from the positions committed with the records (a
    # double would need a forwarder to start again from an older position): count now.
    wait_until(lambda: forwarded() >= calls * PER_CALL, 90, "every record forwarded")

    committed = read_topic(c.bootstrap, topic)
    exact = Counter(
        (json.loads(m.value() or b"")["id"], json.loads(m.value() or b"")["i"]) for m in committed
    )
    assert max(exact.values()) == 1, [k for k, n in exact.items() if n > 1][:5]
    assert set(exact) == {(n, i) for n in range(calls) for i in range(PER_CALL)}
    uncommitted = read_topic(c.bootstrap, topic, isolation="read_uncommitted")
    assert len(uncommitted) > len(committed), "the zombie's transaction was never written"
