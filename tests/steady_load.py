"""A steady stream of calls through several ingress replicas, as behind a load balancer.

It does what an HTTP load balancer does and no more: it checks each replica's readiness
(``/health``) every ``check_s`` and sends calls, in turn, each on a new connection, to the
replicas that answered 200 last (to all if none did); a replica that refuses the connection
gets none, the call goes to the next one (nginx's ``proxy_next_upstream error``). Nothing else
is retried: every other failure is an error the client saw.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadReport:
    sent: int = 0
    answered: int = 0
    rerouted: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(when it was sent, seconds to its answer)."""

    def p(self, q: float, since: float = 0.0, until: float = float("inf")) -> float:
        values = sorted(s for at, s in self.latencies if since <= at <= until)
        return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


class SteadyLoad:
    """Sends ``rate`` calls a second of ``path`` with body ``body`` until stopped."""

    def __init__(
        self, urls: list[str], path: str, body: bytes, rate: float, check_s: float = 0.5
    ) -> None:
        self.urls = urls
        self.ready = list(urls)
        self.check_s = check_s
        self.path = path
        self.body = body
        self.rate = rate
        self.report = LoadReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def stop(self, timeout: float = 120) -> LoadReport:
        """Stops sending and waits for the calls in flight to be answered."""
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "calls still unanswered after the load stopped"
        return self.report

    async def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=1000)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:
            tasks: set[asyncio.Task[None]] = set()
            checks = asyncio.create_task(self._check_forever(client))
            began = time.monotonic()
            while not self._stop.is_set():
                n = self.report.sent
                self.report.sent += 1
                task = asyncio.create_task(self._one(client, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(max(0.0, began + (n + 1) / self.rate - time.monotonic()))
            if tasks:
                await asyncio.wait(tasks)
            checks.cancel()

    async def _check_forever(self, client: httpx.AsyncClient) -> None:
        async def ready(url: str) -> bool:
            try:
                return (await client.get(url + "/health", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        while True:
            answers = await asyncio.gather(*(ready(u) for u in self.urls))
            self.ready = [u for u, ok in zip(self.urls, answers, strict=True) if ok]
            await asyncio.sleep(self.check_s)

    async def _one(self, client: httpx.AsyncClient, n: int) -> None:
        sent = time.time()
        for turn in range(4 * len(self.urls)):
            urls = self.ready or self.urls
            url = urls[(n + turn) % len(urls)]
            try:
                r = await client.post(
                    url + self.path, content=self.body, headers={"content-type": "application/json"}
                )
            except httpx.ConnectError:
                self.report.rerouted += 1
                await asyncio.sleep(0.05 * turn)
                continue
            except httpx.HTTPError as err:
                self.report.errors.append(f"{url}: {err!r}")
                return
            if r.status_code == 200:
                self.report.answered += 1
                self.report.latencies.append((sent, time.time() - sent))
            else:
                self.report.errors.append(f"{url}: {r.status_code} {r.text[:200]}")
            return
        self.report.errors.append("no replica accepted a connection")
