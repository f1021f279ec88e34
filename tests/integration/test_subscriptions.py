"""Kafka topics trigger handlers: the admin API, exactly once, order, dead letters, deletes.

Real broker, real ``perdure worker`` and ``perdure admin`` processes; effects are counted from
outside through the ledger and the objects' state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from perdure.engine.records import Invoke
from tests.cluster import Cluster, Proc, wait_until
from tests.logfold import read_log

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

APP = "tests.apps.events:app"


def make_topic(bootstrap: str, name: str, partitions: int = 4) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, replication_factor=1)])[name].result(30)
    return name


def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes | None]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i, (key, value) in enumerate(records):
        p.produce(topic, key=key, value=value, headers=headers)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def read_all(bootstrap: str, topic: str, timeout: float = 20) -> list[object]:
    """Every record of a topic (read_committed), once its end is reached."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p, 0) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        c.assign(tps)
        out: list[object] = []
        seen = {p: 0 for p in ends}
        deadline = time.monotonic() + timeout
        while any(seen[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for msg in c.consume(500, 0.5):
                if msg.error() is None:
                    out.append(msg)
                    seen[msg.partition()] = (msg.offset() or 0) + 1
        return out
    finally:
        c.close()


def subscribe(c: Cluster, topic: str, sink: str, **options: object) -> str:
    body = {"source": f"kafka://default/{topic}", "sink": sink, "options": options}
    r = httpx.post(f"{c.admin_url}/subscriptions", json=body, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def status(c: Cluster, sub_id: str) -> dict[str, object]:
    r = httpx.get(f"{c.admin_url}/subscriptions/{sub_id}", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json()["status"])


def _appended(c: Cluster, sub_id: str, topic: str) -> set[str]:
    """The invocations the subscription appended for ``topic``'s records, as the log has them."""
    prefix = f"{sub_id}/{topic}/"
    return {
        env.command.invocation_id
        for env in read_log(c.bootstrap, f"{c.name}.log", c.partitions)
        if isinstance(env.command, Invoke)
        and (env.command.idempotency_key or "").startswith(prefix)
    }


def ledger(c: Cluster, kind: str) -> list[list[str]]:
    return [line[1:] for line in c.ledger_lines() if line and line[0] == kind]


@pytest.fixture
def events(cluster_factory: Callable[..., Cluster]) -> tuple[Cluster, Proc, Proc]:
    c = cluster_factory(app=APP)
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    admin = c.start_admin()
    return c, worker, admin


def test_the_admin_api_refuses_bad_subscriptions_clearly(
    events: tuple[Cluster, Proc, Proc], unique_name: Callable[[str], str]
) -> None:
    c, _, _ = events
    topic = make_topic(c.bootstrap, unique_name("topic"))
    url = f"{c.admin_url}/subscriptions"

    def refused(body: object, status: int, words: str) -> None:
        r = httpx.post(url, json=body, timeout=30)
        assert r.status_code == status, r.text
        assert words in r.json()["message"], r.text

    good = {"source": f"kafka://default/{topic}", "sink": "service://tally/add"}
    refused({**good, "source": f"http://default/{topic}"}, 400, "expected kafka://")
    refused({**good, "source": "kafka://default"}, 400, "expected kafka://")
    refused({**good, "source": f"kafka://nowhere/{topic}"}, 400, "unknown Kafka cluster 'nowhere'")
    refused({**good, "source": "kafka://default/no-such-topic"}, 400, "does not exist")
    refused({**good, "sink": "service://nope/add"}, 400, "service 'nope' not found")
    refused({**good, "sink": "service://tally/nope"}, 400, "handler 'nope' not found")
    refused({**good, "sink": "tally/add"}, 400, "expected service://")
    refused({**good, "options": {"ordering": "random"}}, 400, "ordering")
    refused({**good, "options": {"max_in_flight": 0}}, 400, "max_in_flight")
    refused({**good, "options": {"group.id": "mine"}}, 400, "set by Perdure")
    refused({**good, "options": {"auto.offset.rest": "x"}}, 400, "bad consumer setting")
    refused({"sink": "service://tally/add"}, 400, "required")
    r = httpx.post(url, content=b"{nope", timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]

    sub_id = subscribe(c, topic, "service://tally/add", **{"auto.offset.reset": "earliest"})
    refused(good, 409, sub_id)
    listed = httpx.get(url, timeout=10).json()["subscriptions"]
    assert sub_id in [s["id"] for s in listed]
    one = httpx.get(f"{url}/{sub_id}", timeout=10).json()
    assert one["source"] == good["source"] and one["sink"] == good["sink"]
    assert one["options"] == {"auto.offset.reset": "earliest"}
    assert httpx.get(f"{url}/sub_nope", timeout=10).status_code == 404
    assert httpx.delete(f"{url}/{sub_id}", timeout=30).status_code == 202
    assert httpx.get(f"{url}/{sub_id}", timeout=10).status_code == 404
    assert httpx.delete(f"{url}/{sub_id}", timeout=30).status_code == 404


def test_records_reach_handlers_with_their_metadata_and_poison_goes_to_dead_letters(
    events: tuple[Cluster, Proc, Proc], unique_name: Callable[[str], str]
) -> None:
    c, _, _ = events
    payments = make_topic(c.bootstrap, unique_name("payments"), partitions=1)
    raw = make_topic(c.bootstrap, unique_name("raw"), partitions=1)
    objects = make_topic(c.bootstrap, unique_name("objects"), partitions=1)
    good = json.dumps({"order_id": "o-1", "amount": 5}).encode()
    produce(
        c.bootstrap,
        payments,
        [
            (b"a", b"{not json"),
            (b"b", json.dumps({"order_id": "o-2", "amount": -1}).encode()),  # does not validate
            (b"c", good),
        ],
    )
    produce(c.bootstrap, raw, [(b"k\xff", b"\x00\x01binary")], headers=[("trace", b"t-9")])
    produce(c.bootstrap, objects, [(b"\xff\xfe", b"{}"), (None, b"{}"), (b"ok", b"{}")])
    subscribe(c, payments, "service://feed/pay")
    subscribe(c, raw, "service://feed/raw")
    subscribe(c, objects, "service://tally/add")

    wait_until(lambda: ledger(c, "pay") and ledger(c, "raw"), 60, "the good records to run")
    assert ledger(c, "pay") == [["o-1", "5"]]
    assert ledger(c, "raw") == [["0001" + b"binary".hex(), "k\\xff", "t-9", raw]]
    wait_until(lambda: ledger(c, "tally"), 60, "the keyed record to run")
    assert [line[:2] for line in ledger(c, "tally")] == [["ok", "2"]]

    def dead() -> list[dict[str, str]]:
        found = read_all(c.bootstrap, f"{c.name}.dead-letters")
        return [
            {k: (v or b"").decode() for k, v in (m.headers() or [])}  # type: ignore[attr-defined]
            for m in found
        ]

    wait_until(lambda: len(dead()) >= 4, 60, "four dead letters")
    letters = sorted(dead(), key=lambda h: (h["perdure.source.topic"], h["perdure.source.offset"]))
    reasons = [(h["perdure.source.topic"], h["perdure.error.reason"]) for h in letters]
    assert reasons == [
        (objects, "bad_key"),
        (objects, "no_key"),
        (payments, "bad_json"),
        (payments, "failed"),
    ]
    assert "does not validate" in letters[3]["perdure.error"]
    assert letters[3]["perdure.error.code"] == "400"
    assert letters[3]["perdure.invocation"].startswith("inv_")


def test_ordering_partition_keeps_order_and_the_default_runs_records_side_by_side(
    events: tuple[Cluster, Proc, Proc], unique_name: Callable[[str], str]
) -> None:
    c, _, _ = events
    ordered = make_topic(c.bootstrap, unique_name("ordered"), partitions=1)
    parallel = make_topic(c.bootstrap, unique_name("parallel"), partitions=1)
    body = json.dumps({"sleep": 0.3}).encode()
    produce(c.bootstrap, ordered, [(None, body)] * 12)
    produce(c.bootstrap, parallel, [(None, body)] * 12)
    started = time.monotonic()
    subscribe(c, parallel, "service://feed/note")
    wait_until(lambda: len(ledger(c, "note-end")) >= 12, 60, "the parallel records")
    parallel_s = time.monotonic() - started
    # Side by side: started before the ones before them ended.
    events_in_order = [(e[0], int(e[2])) for e in c.ledger_lines() if e[0].startswith("note")]
    overlap = any(
        kind == "note-start" and ("note-end", off - 1) not in events_in_order[:i]
        for i, (kind, off) in enumerate(events_in_order)
        if off > 0
    )
    assert overlap, events_in_order
    assert parallel_s < 12 * 0.3, parallel_s

    c.ledger.unlink()
    subscribe(c, ordered, "service://feed/note", ordering="partition")
    wait_until(lambda: len(ledger(c, "note-end")) >= 12, 90, "the ordered records")
    lines = [(e[0], int(e[2])) for e in c.ledger_lines() if e[0].startswith("note")]
    starts = [off for kind, off in lines if kind == "note-start"]
    assert starts == sorted(starts) and len(set(starts)) == 12
    for i, (kind, off) in enumerate(lines):
        if kind == "note-start" and off > 0:
            assert ("note-end", off - 1) in lines[:i], f"{off} started before {off - 1} ended"


def test_a_subscription_made_late_deleted_mid_stream_and_made_again(
    events: tuple[Cluster, Proc, Proc], unique_name: Callable[[str], str]
) -> None:
    c, _, _ = events
    topic = make_topic(c.bootstrap, unique_name("orders"), partitions=2)
    records = [(f"k{i % 10}".encode(), json.dumps({"i": i}).encode()) for i in range(300)]
    produce(c.bootstrap, topic, records)  # waiting before the subscription exists
    sub_id = subscribe(c, topic, "service://tally/add", max_in_flight=20)
    wait_until(lambda: len(ledger(c, "tally")) >= 50, 60, "some records to run")
    r = httpx.delete(f"{c.admin_url}/subscriptions/{sub_id}", timeout=30)
    assert r.status_code == 202
    # Invocations already appended finish; nothing new is appended once the delete is
    # answered: read from the log itself, once they all ran.
    appended = _appended(c, sub_id, topic)
    wait_until(
        lambda: appended <= {line[2] for line in ledger(c, "tally")},
        60,
        "the invocations appended before the delete to finish",
    )
    assert _appended(c, sub_id, topic) == appended, "appended after the delete was acknowledged"
    assert len(appended) < 300
    produce(c.bootstrap, topic, records[:50])  # more while it is gone
    assert subscribe(c, topic, "service://tally/add") == sub_id  # the same pair, the same id

    def offsets(key: str) -> list[int]:
        r = httpx.post(f"{c.url}/tally/{key}/offsets", timeout=30)
        assert r.status_code == 200, r.text
        return list(r.json())

    def all_done() -> bool:
        return sum(len(offsets(f"k{k}")) for k in range(10)) >= 350

    wait_until(all_done, 90, "every record once the subscription is back")
    per_key = {f"k{k}": offsets(f"k{k}") for k in range(10)}
    for key, got in per_key.items():
        assert len(got) == len(set(got)) == 35, (key, got)
    ids = Counter(line[2] for line in ledger(c, "tally"))
    assert len(ids) == 350, "each record is one invocation, re-read or not"
    assert status(c, sub_id)["state"] == "running"


def test_a_subscription_declared_in_code_is_created_by_the_admin(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("declared")
    c = cluster_factory(app=APP, env={"PERDURE_TEST_DECLARED_TOPIC": topic})
    make_topic(c.bootstrap, topic, partitions=1)
    produce(c.bootstrap, topic, [(None, json.dumps({"n": n}).encode()) for n in range(5)])
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    c.start_admin()
    wait_until(lambda: len(ledger(c, "declared")) >= 5, 60, "the declared subscription to run")
    listed = httpx.get(f"{c.admin_url}/subscriptions", timeout=10).json()["subscriptions"]
    (sub,) = listed
    assert sub["declared"] and sub["sink"] == "service://declared/seen"
    assert sub["source"] == f"kafka://default/{topic}"
    r = httpx.delete(f"{c.admin_url}/subscriptions/{sub['id']}", timeout=30)
    assert r.status_code == 409 and "declared in code" in r.json()["message"]
    assert sorted(int(line[0]) for line in ledger(c, "declared")) == list(range(5))


def test_the_orders_example_pays_each_order_event_once(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    c = cluster_factory(app="perdure.examples.orders:app")
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    c.start_admin()
    order = unique_name("order")
    env = {"PERDURE_BOOTSTRAP": c.bootstrap}
    for _ in range(2):  # the same event twice: one payment
        subprocess.run(
            [sys.executable, "-m", "perdure.examples.orders", order, "42"],
            env={**c.env, **env},
            check=True,
            timeout=60,
        )
    answers: list[httpx.Response] = []

    def paid() -> bool:
        r = httpx.get(f"{c.url}/restate/workflow/payment/{order}/attach", timeout=60)
        answers.append(r)
        return r.status_code == 200  # 404 until the subscription has read the event

    wait_until(paid, 60, "the order's payment workflow")
    assert answers[-1].json()["chargeId"] == f"ch-{order}-42"
    # The workflow completed (its attach answered): nothing of it runs any more.
    wait_until(lambda: worker.log().count(f"charged 42 for {order}") >= 1, 30, "the charge")
    assert worker.log().count(f"charged 42 for {order}") == 1
    # One payments.completed record for the order (the topic holds other runs' orders too).
    completed = subprocess.run(
        [sys.executable, "-m", "perdure.examples.orders", "--completed"],
        env={**c.env, **env},
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    mine = [json.loads(line) for line in completed if order in line]
    assert mine == [{"orderId": order, "chargeId": f"ch-{order}-42", "amount": 42}]
