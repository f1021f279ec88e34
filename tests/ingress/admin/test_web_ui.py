"""The admin's web UI in a real headless Chromium: list and filter, open, cancel, state.

Chromium is tests/browser.py's; screenshots of each page are kept with the tests' artefacts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from perdure.engine import schemas
from tests.browser import chromium_page, screenshot
from tests.cluster import Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A Chromium page (1400x900); the browser is closed after the test, failed or not."""
    with chromium_page() as page:
        yield page


def shot(page: object, name: str) -> Path:
    return screenshot(page, f"web-ui-{name}")


def test_list_open_cancel_and_read_state_in_a_browser(
    cluster_factory: Callable[..., Cluster], browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    token = "ui-secret"
    c = cluster_factory(app="tests.apps.shop:app", partitions=4)
    c.start_worker("a")
    c.start_ingress()
    c.start_admin(port=free_port(), env={"PERDURE_ADMIN_TOKEN": token})
    auth = {"Authorization": f"Bearer {token}"}

    done = httpx.post(f"{c.url}/orders/checkout", json="A-1001", timeout=60)
    assert done.status_code == 200, done.text
    for i in range(3):
        assert httpx.post(f"{c.url}/counter/k{i}/add", json=i + 1, timeout=60).status_code == 200
    r = httpx.post(f"{c.url}/orders/await_approval/send", json="A-1002", timeout=30)
    waiting = r.json()["invocationId"]

    def suspended() -> bool:
        r = httpx.get(f"{c.admin_url}/invocations/{waiting}", headers=auth, timeout=30)
        return r.status_code == 200 and r.json()["status"] == "suspended"

    wait_until(suspended, 60, "the approval to wait (suspended)")

    # The UI's page loads without the token; its first read asks for it.
    page.goto(f"{c.admin_url}/")
    expect(page.locator("#notice")).to_contain_text("token")
    page.fill("#token", token)
    page.click("#token-form button")
    rows = page.locator("#invocations tbody tr")
    expect(rows).to_have_count(5)
    shot(page, "list")

    # Filters: the URL carries them, the table shows only what matches.
    page.select_option("#filters select[name=status]", "suspended")
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", waiting)
    page.select_option("#filters select[name=status]", "")
    page.fill("#filters input[name=service]", "orders")
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(2)

    # The checkout's page: its journal as a timeline, its two failed attempts with the error.
    checkout = page.locator("#invocations tbody tr", has_text="orders/checkout")
    checkout.locator("a").click()
    expect(page.locator("[data-fact=status]")).to_have_text("completed")
    entries = page.locator("#journal tr.entry")
    expect(entries).to_have_count(4)
    expect(entries.nth(0)).to_contain_text("reserve stock")
    expect(entries.nth(1)).to_contain_text("charge card")
    expect(entries.nth(2)).to_contain_text("sleep")
    expect(entries.nth(3)).to_contain_text("ship")
    failed = page.locator("#journal tr.attempt-failed")
    expect(failed).to_have_count(2)
    expect(failed.first).to_contain_text("payment gateway timed out")
    expect(failed.first).to_contain_text("Traceback")  # the stack, not only the message
    expect(failed.first).to_contain_text("RuntimeError: payment gateway")
    expect(page.locator("[data-fact=attempts]")).to_have_text("3")
    # The sleep took its 400 ms: the timeline says so.
    took = entries.nth(2).locator("td").nth(4).inner_text()
    assert " ms" in took or " s" in took, took
    page.click("text=show results")
    expect(entries.nth(3)).to_contain_text("parcel-A-1001")
    shot(page, "invocation")

    # Cancel the waiting one from its page: it ends cancelled, as the admin API says too.
    page.goto(f"{c.admin_url}/ui/#/invocations/{waiting}")
    expect(page.locator("[data-fact=status]")).to_have_text("suspended")
    page.click("[data-action=cancel]")
    expect(page.locator("#notice")).to_contain_text("accepted")
    expect(page.locator("[data-fact=status]")).to_have_text("cancelled", timeout=30_000)
    r = httpx.get(f"{c.admin_url}/invocations/{waiting}", headers=auth, timeout=30)
    assert r.json()["status"] == "cancelled"
    shot(page, "cancelled")

    # An object's state, and a clear error for an unknown invocation.
    page.goto(f"{c.admin_url}/ui/#/state?service=counter&key=k2")
    expect(page.locator("#state tr[data-name=value]")).to_contain_text("3")
    shot(page, "state")
    page.goto(f"{c.admin_url}/ui/#/invocations/inv_nope")
    expect(page.locator("#notice")).to_contain_text("400")

    # A record the worker cannot read blocks partition 3: every page says so, and why.
    producer = Producer({"bootstrap.servers": c.bootstrap})
    producer.produce(
        f"{c.name}.log", value=b"\x00", partition=3, headers=[(schemas.VERSION_HEADER, b"99")]
    )
    assert producer.flush(30) == 0

    def blocked() -> bool:
        doc = httpx.get(f"{c.admin_url}/cluster", headers=auth, timeout=30).json()
        return bool(doc["blocked"])

    wait_until(blocked, 30, "the admin to see partition 3 blocked")
    page.goto(f"{c.admin_url}/ui/#/services")
    expect(page.locator("#notice")).to_contain_text("partition 3 blocked", timeout=30_000)
    expect(page.locator("#notice")).to_contain_text("not known")
    shot(page, "blocked")
