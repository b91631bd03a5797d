"""Load on `twistd track` instances while a cluster node breaks: every answer
recorded by MessageID, and each instance's /healthz sampled meanwhile.

Every loop is bounded in count and in time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.web.client import HTTPConnectionPool

FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
PATH = "/api/1.0/track/user/"
REQUEST_TIMEOUT = 30.0


class Load:
    """Clients posting user events, each with a fresh MessageID, to one
    instance until stopped, `max_events` are sent or `max_seconds` pass."""

    def __init__(self, base: str, prefix: str, pool: HTTPConnectionPool, max_events: int = 5000,
                 max_seconds: float = 240.0, clients: int = 2) -> None:
        self.base = base
        self.prefix = prefix
        self.pool = pool
        self.max_events = max_events
        self.max_seconds = max_seconds
        self.clients = clients
        self.answers: dict[str, int] = {}  # MessageID -> status (0: no answer)
        self.sent = 0
        self.stopped = False
        self.done: Deferred[Any] | None = None

    @property
    def acked(self) -> list[str]:
        return [m for m, code in self.answers.items() if code == 201]

    @property
    def failed(self) -> list[tuple[str, int]]:
        return [(m, code) for m, code in self.answers.items() if code != 201]

    def start(self) -> None:
        clock: Any = reactor
        deadline = clock.seconds() + self.max_seconds
        self.done = DeferredList([Deferred.fromCoroutine(self._client(c, deadline)) for c in range(self.clients)],
                                 fireOnOneErrback=True, consumeErrors=True)

    async def stop(self) -> None:
        self.stopped = True
        if self.done is not None:
            await self.done

    async def _client(self, c: int, deadline: float) -> None:
        clock: Any = reactor
        n = 0
        while not self.stopped and self.sent < self.max_events and clock.seconds() < deadline:
            self.sent += 1
            message_id = f"{self.prefix}-{c}-{n}"
            n += 1
            body = f"ProfileID={n}&Region=eu&MessageID={message_id}".encode()
            try:
                response = await treq.post(self.base + PATH, data=body, headers=FORM, pool=self.pool,
                                           timeout=REQUEST_TIMEOUT)
                await response.content()
                self.answers[message_id] = response.code
            except Exception:
                self.answers[message_id] = 0
                await deferLater(clock, 0.05, lambda: None)  # no busy loop on a refused connection


async def get_health(base: str, pool: HTTPConnectionPool) -> dict[str, Any]:
    response = await treq.get(base + "/healthz", pool=pool, timeout=10)
    health: dict[str, Any] = json.loads(await response.content())
    return health


class HealthLog:
    """/healthz of one instance every 100 ms until stopped (bounded)."""

    def __init__(self, base: str, pool: HTTPConnectionPool, max_samples: int = 3000) -> None:
        self.base = base
        self.pool = pool
        self.max_samples = max_samples
        self.samples: list[dict[str, Any]] = []
        self.stopped = False
        self.done: Deferred[None] = Deferred.fromCoroutine(self._run())

    async def _run(self) -> None:
        clock: Any = reactor
        while not self.stopped and len(self.samples) < self.max_samples:
            try:
                self.samples.append(await get_health(self.base, self.pool))
            except Exception as e:
                self.samples.append({"error": repr(e)})
            await deferLater(clock, 0.1, lambda: None)

    async def stop(self) -> list[dict[str, Any]]:
        self.stopped = True
        await self.done
        return self.samples

    def hosts_in_use(self) -> list[str]:
        return [s.get("database_host", "?") for s in self.samples]

    def most_spooled(self) -> int:
        return max((s.get("spool", {}).get("events", 0) for s in self.samples), default=0)


def in_order(values: Sequence[str]) -> list[str]:
    """Values without repeats in a row: the hosts an instance went through."""
    out: list[str] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out
