"""A trip booking saga: flight, hotel, car; when a later step fails for good (or the booking is
cancelled), the compensations of the steps before run durably, in reverse order.

    perdure dev perdure.examples.booking:app
    curl -s localhost:8080/booking/book_trip -d '{"tripId": "t1"}'
    curl -s localhost:8080/booking/book_trip -d '{"tripId": "t2", "failCar": true}'

The fake APIs append to $PERDURE_EXAMPLE_LEDGER and, like real booking APIs, deduplicate by the
idempotency key each step passes (``ctx.step_idempotency_key()``): a step retried after a crash
is applied once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perdure import Context, Endpoint, Service, TerminalError


def _ledger() -> Path:
    return Path(os.environ.get("PERDURE_EXAMPLE_LEDGER", ".perdure/ledger.txt"))


def _note(line: str) -> None:
    ledger = _ledger()
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as f:
        f.write(line + "\n")


def _api(name: str) -> Callable[..., bool]:
    def call(trip_id: str, idempotency_key: str, fail: bool = False) -> bool:
        spec = os.environ.get("PERDURE_EXAMPLE_SLOW", "")
        slow_step, _, seconds = spec.partition(":")
        if slow_step == name and seconds:
            _note(f"slow:{name}\t{trip_id}")  # a fault test knows the step has begun
            time.sleep(float(seconds))
        if fail:
            raise TerminalError(f"{name}: no availability for {trip_id}", status_code=409)
        ledger = _ledger()
        ledger.parent.mkdir(parents=True, exist_ok=True)
        seen = ledger.read_text().splitlines() if ledger.exists() else []
        line = f"{name}\t{trip_id}\t{idempotency_key}"
        if line not in seen:  # the API deduplicates by idempotency key
            with ledger.open("a") as f:
                f.write(line + "\n")
        return True

    return call


booking = Service("booking")


@booking.handler()
async def book_trip(ctx: Context, trip: dict[str, Any]) -> dict[str, Any]:
    trip_id = trip["tripId"]
    undo: list[tuple[str, Callable[..., Any]]] = []

    async def step(name: str, fn: Callable[..., Any], *args: Any) -> None:
        await ctx.run(name, lambda: fn(trip_id, ctx.step_idempotency_key(), *args))

    try:
        undo.append(("cancel-flight", _api("cancel-flight")))  # before: the step may half-run
        await step("book-flight", _api("book-flight"))
        undo.append(("cancel-hotel", _api("cancel-hotel")))
        await step("book-hotel", _api("book-hotel"))
        undo.append(("cancel-car", _api("cancel-car")))
        await step("book-car", _api("book-car"), bool(trip.get("failCar")))
    except TerminalError:
        for name, fn in reversed(undo):
            await step(name, fn)
        raise
    return {"tripId": trip_id, "status": "booked"}


app = Endpoint([booking])
