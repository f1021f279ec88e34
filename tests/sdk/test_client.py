"""sdk/client.py against a running ingress on the real broker: typed calls by handler and
through services, idempotency keys, delayed sends, workflows, awakeables, errors; sync and async.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from perdure import TerminalError
from perdure.examples import approvals, cart, payments, signup
from perdure.sdk.client import AsyncPerdureClient, PerdureClient, Sent
from perdure.sdk.client_http import NOT_READY
from tests.cluster import Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

ORDER = {"orderId": "o-1", "userId": "u-1", "amount": 42}


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    c = cluster_factory(app="perdure.examples.everything:app")
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    return c


@pytest.fixture
def client(cluster: Cluster) -> Iterator[PerdureClient]:
    with PerdureClient(cluster.url, timeout=60) as c:
        yield c


def charges(c: Cluster, user: str) -> int:
    return sum(1 for line in c.ledger_lines() if line[:2] == ["charge", user])


def test_calls_by_handler_and_through_services_with_idempotency_keys(
    cluster: Cluster, client: PerdureClient
) -> None:
    out = client.call(payments.process_payment, ORDER, idempotency_key="pay-1")
    assert out == {"orderId": "o-1", "chargeId": "ch-u-1-42", "status": "completed"}
    again = client.service(payments.payments).process_payment(ORDER, idempotency_key="pay-1")
    assert again == out
    assert charges(cluster, "u-1") == 1, "the same key never runs twice"

    assert client.object(cart.cart, "ann").add_item({"sku": "tea", "price": 4}) == {"items": 1}
    assert client.call(cart.get_items, key="ann") == [{"sku": "tea", "price": 4}]
    assert client.object(cart.cart, "ann").checkout()["chargeId"] == "ch-ann-4"


def test_errors_are_terminal_errors_with_the_status(
    cluster: Cluster, client: PerdureClient
) -> None:
    with pytest.raises(TerminalError) as bad:
        client.call(payments.process_payment, {**ORDER, "amount": 0})
    assert bad.value.status_code == 400 and "amount must be positive" in bad.value.message
    with pytest.raises(TerminalError) as empty:
        client.object(cart.cart, "nobody").checkout()
    assert empty.value.status_code == 400
    with pytest.raises(TerminalError) as no_key:
        client.call(cart.get_items)
    assert no_key.value.status_code == 400
    with pytest.raises(AttributeError, match="no handler 'refund'"):
        client.service(payments.payments).refund(ORDER)
    with pytest.raises(TerminalError) as unreachable:
        PerdureClient(f"http://127.0.0.1:{free_port()}", timeout=5).call(cart.get_items, key="x")
    assert unreachable.value.status_code == 503


def test_a_delayed_send_starts_no_sooner(cluster: Cluster, client: PerdureClient) -> None:
    began = time.monotonic()
    sent = client.send(
        payments.process_payment, {**ORDER, "userId": "u-2"}, delay=timedelta(seconds=2)
    )
    assert isinstance(sent, Sent) and sent.invocation_id.startswith("inv_")
    with pytest.raises(TerminalError) as early:
        client.output(sent)
    assert early.value.status_code == NOT_READY
    assert client.attach(sent)["status"] == "completed"
    assert time.monotonic() - began >= 2.0
    assert charges(cluster, "u-2") == 1


def test_a_workflow_submitted_attached_and_its_output(
    cluster: Cluster, client: PerdureClient
) -> None:
    run = client.workflow(signup.signup, "ann")
    sent = run.submit({"email": "ann@x.org"})
    assert sent.status == "Accepted"
    assert run.submit({"email": "ann@x.org"}).status == "PreviouslyAccepted"
    wait_until(lambda: run.status() == "waiting for verification", 30, "the mail")
    with pytest.raises(TerminalError) as running:
        run.output()
    assert running.value.status_code == NOT_READY
    code = next(line[2] for line in cluster.ledger_lines() if line[:2] == ["mail", "ann@x.org"])
    assert run.verify(code) == "thanks"
    assert run.attach() == {"user": "ann", "email": "ann@x.org", "verified": True}
    assert run.output() == run.attach()


def test_the_async_client_and_awakeables(cluster: Cluster) -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        async with AsyncPerdureClient(cluster.url, timeout=60) as client:
            out = await client.call(payments.process_payment, {**ORDER, "userId": "u-3"})
            sent = await client.send(approvals.request, {"item": "desk"})

            def asked() -> bool:
                return any(line[:2] == ["approval", "desk"] for line in cluster.ledger_lines())

            await asyncio.to_thread(wait_until, asked, 30, "the approval request")
            awakeable = next(
                line[2] for line in cluster.ledger_lines() if line[:2] == ["approval", "desk"]
            )
            await client.resolve_awakeable(awakeable, "yes")
            with pytest.raises(TerminalError) as twice:
                await client.reject_awakeable(awakeable, "no")
            assert twice.value.status_code == 409
            return out, await client.attach(sent)

    out, approved = asyncio.run(scenario())
    assert out["status"] == "completed"
    assert approved["approved"] is True and approved["answer"] == "yes"
