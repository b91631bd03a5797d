"""The hosts of a multi-host DSN: which one takes the writes, and how each is.

`Hosts` lives on the reactor thread.  The store reads `current` when it hands
a write to a pool thread, and moves it when a write finds that host
unavailable (at once, to the next host, where the write is tried again) or
when `HostWatch` finds a host earlier in the DSN's list (the preferred one
first) healthy and synced again.  Every switch is one log line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from track.logs import Logger
from track.storage.dsn import host_label

log = Logger(namespace="track.store")

# How often the hosts not in use are checked, and how many checks in a row a
# preferred host must pass before writes go back to it (a node that has just
# rejoined its cluster may leave it again).
WATCH_INTERVAL = 1.0
HEALTHY_ROUNDS = 2
# While the preferred host is in use there is nothing to take back: the
# others are checked less often (their state for /healthz only).
IDLE_INTERVAL = 5.0
Address = tuple[str, int]


@dataclass
class HostState:
    """What is known of one host: "in use", "ready" (checked, takes
    writes), "down" (with the error), or "unknown" (not tried yet)."""

    label: str
    state: str = "unknown"
    error: str = ""
    healthy_rounds: int = 0

    def shown(self) -> dict[str, str]:
        shown = {"host": self.label, "state": self.state}
        if self.error:
            shown["error"] = self.error
        return shown


class Hosts:
    """The DSN's hosts in order of preference, and the one writes go to."""

    def __init__(self, addresses: Sequence[Address]) -> None:
        self.addresses = list(addresses)
        self.states = [HostState(host_label(*a)) for a in self.addresses]
        self.current = 0
        self.switches = 0
        self.on_switch: Callable[[], None] = lambda: None  # counted in /metrics (track.run.tap)

    @property
    def many(self) -> bool:
        return len(self.addresses) > 1

    def worked(self, i: int) -> None:
        state = self.states[i]
        state.state, state.error = ("in use" if i == self.current else "ready"), ""

    def failed(self, i: int, error: str) -> None:
        state = self.states[i]
        state.state, state.error, state.healthy_rounds = "down", error, 0

    def checked(self, i: int, error: str | None) -> None:
        """The watch's verdict on a host not in use (None: healthy)."""
        if i == self.current:
            return  # the writes themselves say how it is
        state = self.states[i]
        if error is None:
            state.state, state.error = "ready", ""
            state.healthy_rounds += 1
        else:
            self.failed(i, error)

    def next_to_try(self, failed: int, tried: Sequence[int]) -> int | None:
        """For a write that failed on `failed`: the current host if it has
        not tried it (another write moved on already), else the next host
        after `failed` it has not tried, hosts not known to be down first."""
        if self.current not in tried:
            return self.current
        order = [(failed + k) % len(self.addresses) for k in range(1, len(self.addresses))]
        untried = [i for i in order if i not in tried]
        fresh = [i for i in untried if self.states[i].state != "down"]
        choices = fresh or untried
        return choices[0] if choices else None

    def switch(self, to: int, reason: str) -> None:
        """Send writes to host `to` from now on; one log line."""
        if to == self.current:
            return
        before = self.current
        self.current = to
        self.switches += 1
        self.on_switch()
        if self.states[before].state == "in use":
            self.states[before].state = "ready"
        self.states[to].state, self.states[to].error = "in use", ""
        log.warn("database host {old} -> {new}: {reason}",
                 old=self.states[before].label, new=self.states[to].label, reason=reason)

    def health(self) -> dict[str, Any]:
        """For /healthz: the host in use and each host's state (never a password)."""
        return {"database_host": self.states[self.current].label,
                "database_hosts": [s.shown() for s in self.states]}


class HostWatch:
    """Checks the hosts not in use in the background, each on a connection of
    its own (bounded by the DSN's connect timeout): every second while a
    host earlier in the list might be taken back, every five while the
    preferred one is in use.  Takes back the earliest host that has been
    healthy and synced for HEALTHY_ROUNDS checks in a row."""

    def __init__(self, hosts: Hosts, check: Callable[[Address], None], clock: IReactorTime,
                 interval: float = WATCH_INTERVAL, idle_interval: float = IDLE_INTERVAL,
                 run: Callable[[Callable[[Address], None], Address], Deferred[None]] = deferToThread) -> None:
        """`check(address)` blocks, so `run` runs it off the reactor thread."""
        self.hosts = hosts
        self.check = check
        self.run = run
        self.clock = clock
        self.interval = interval
        self.idle_interval = idle_interval
        self._call: IDelayedCall | None = None
        self._running = False

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._schedule()

    def stop(self) -> None:
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        if self._running:
            wait = self.idle_interval if self.hosts.current == 0 else self.interval
            self._call = self.clock.callLater(wait, self._round)

    def _round(self) -> None:
        self._call = None
        hosts = self.hosts
        others = [i for i in range(len(hosts.addresses)) if i != hosts.current]
        checks: list[Deferred[None]] = []
        for i in others:
            d: Deferred[None] = self.run(self.check, hosts.addresses[i])
            d.addCallbacks(self._healthy, self._unhealthy, callbackArgs=(i,), errbackArgs=(i,))
            checks.append(d)
        done: Deferred[Any] = DeferredList(checks)
        done.addCallback(lambda _: self._take_back())
        done.addBoth(lambda _: self._schedule())

    def _healthy(self, _: object, i: int) -> None:
        if self._running:
            self.hosts.checked(i, None)

    def _unhealthy(self, failure: Failure, i: int) -> None:
        if self._running:
            self.hosts.checked(i, failure.getErrorMessage() or repr(failure.value))

    def _take_back(self) -> None:
        if not self._running:
            return
        hosts = self.hosts
        for i in range(hosts.current):
            if hosts.states[i].healthy_rounds >= HEALTHY_ROUNDS:
                hosts.switch(i, "it is healthy and synced again, and comes earlier in the DSN")
                return
