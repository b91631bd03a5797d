"""File descriptors: the limit raised at start, a default `--max-connections`
that leaves room for the rest, and accept errors counted instead of logged.

When the process runs out of descriptors, `accept()` fails with EMFILE and
the listening socket stays readable: clients wait in the backlog, and the
reactor calls accept again on every turn.  Twisted's TCP port keeps one
reserved descriptor for this (`twisted.internet.tcp._reservedFD`), but it
accepts-and-closes only as many waiting clients as its last accept round
took, which after the first EMFILE is none, and it logs three lines per
attempt: 6,000 lines a minute, a busy loop, and clients left hanging.

`AcceptGuard` sits on the listening port:

- every accept error is counted in `track_accept_errors_total{errno}` and
  summarized in one line per interval, never logged per attempt;
- after an EMFILE (or ENFILE, ENOBUFS, ENOMEM) it closes its own reserved
  descriptor, accepts each client waiting in the backlog and closes it at
  once (bounded by DRAIN_MAX), then takes its reserve again: the waiting
  clients fail fast instead of hanging (the technique of libuv and nginx),
  counted in `track_connections_dropped_total{reason="no_descriptors"}`;
- then the port stops accepting for `ACCEPT_PAUSE` seconds, serving the
  connections already open meanwhile, and resumes: no busy loop, and a
  client that connects meanwhile waits at most that long.

This module is the only one that touches Twisted's private TCP port names
(`Port._logger`, and the formats of what `tcp._accept` logs);
`track/test/run/test_accepting.py` fails, naming them, if a Twisted release
changes them.
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.logger import Logger as TwistedLogger

from track.logs import Logger, Summaries
from track.metrics import Metrics

log = Logger(namespace="track.accept")

ACCEPT_PAUSE = 0.5  # seconds without accepting after running out of descriptors
# Descriptors kept for everything but client connections: stdio, log files,
# the listening socket, the reactor's own (epoll, waker), the reserved one,
# the database pool's connections, the spool's files, imports, workers' pipes.
RESERVED_DESCRIPTORS = 64
# An unlimited hard limit is raised to this (Linux's default fs.nr_open).
UNLIMITED_CAP = 1024 * 1024
DRAIN_MAX = 4096  # most waiting clients closed after one EMFILE (the backlog is 1024)
_EXHAUSTED = frozenset({"EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"})

# The formats of the events twisted.internet.tcp._accept logs, per client.
RELEASING = "EMFILE encountered; releasing reserved file descriptor."
CLOSED = "EMFILE recovery: Closed socket from {address}"
RESERVING = "Re-reserving EMFILE recovery file descriptor."
COULD_NOT_ACCEPT = "Could not accept new connection ({acceptError})"


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def default_max_connections(limit: int | None = None) -> int:
    """Connections a process with `limit` descriptors (by default, its soft
    limit now) may hold open."""
    if limit is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        limit = UNLIMITED_CAP if soft == resource.RLIM_INFINITY else soft
    return max(1, limit - RESERVED_DESCRIPTORS)


def descriptors_at_start() -> int:
    """Raise the limit, log the figure, and return it."""
    before, after = raise_descriptor_limit()
    if after > before:
        log.info("file descriptors: soft limit raised from {before} to {after} (the hard limit)",
                 before=before, after=after)
    else:
        log.info("file descriptors: limit {after}", after=after)
    return after


class AcceptGuard:
    """Counts a listening port's accept errors and pauses it when the
    process is out of descriptors (see the module's docstring)."""

    def __init__(self, port: Any, clock: IReactorTime, metrics: Metrics, summaries: Summaries,
                 pause: float = ACCEPT_PAUSE) -> None:
        self.port = port
        self.clock = clock
        self.metrics = metrics
        self.summaries = summaries
        self.pause = pause
        self.paused: IDelayedCall | None = None
        self._exhausted = False
        self._accept: Callable[[], Any] | None = None
        self._reserve: int | None = None

    def install(self) -> bool:
        """Put the guard on the port; False for a port that is not one of
        Twisted's TCP (or UNIX) ports, which is left alone."""
        if not isinstance(self.port, tcp.Port):
            return False
        port: Any = self.port  # its private attributes are untyped
        # Private `Port._logger` (a class-level Logger): Port.doRead hands
        # the events of its accept loop to `self._logger.observer`.  An
        # instance attribute of the same name takes its place.
        port._logger = TwistedLogger(namespace="twisted.internet.tcp.Port", source=port,
                                     observer=cast(ILogObserver, self._observe))
        # Port.doRead, called by the reactor when the socket is readable:
        # wrapped, to pause after it ran out of descriptors.
        self._accept = port.doRead
        port.doRead = self.doRead
        self._take_reserve()
        return True

    def _take_reserve(self) -> None:
        if self._reserve is None:
            try:
                self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._reserve = None  # out of descriptors: taken again on resume

    def _drain(self) -> int:
        """Accept each waiting client on the reserved descriptor and close
        it at once; how many there were."""
        if self._reserve is None:
            return 0
        os.close(self._reserve)
        self._reserve = None
        # Port.socket: the listening socket (a public attribute of Port).
        listener: socket.socket = self.port.socket
        closed = 0
        try:
            for _ in range(DRAIN_MAX):
                try:
                    client, _address = listener.accept()
                except OSError:
                    break  # EAGAIN: none left (or the descriptor went elsewhere)
                client.close()
                closed += 1
        finally:
            self._take_reserve()
        return closed

    def doRead(self) -> None:
        assert self._accept is not None
        self._exhausted = False
        self._accept()
        if self._exhausted and self.paused is None and self.port.connected and not self.port.disconnecting:
            self._dropped(self._drain())
            self.port.stopReading()
            self.paused = self.clock.callLater(self.pause, self._resume)

    def _resume(self) -> None:
        self.paused = None
        if self.port.connected and not self.port.disconnecting:
            self._take_reserve()
            self.port.startReading()

    def stop(self) -> None:
        if self.paused is not None and self.paused.active():
            self.paused.cancel()
        self.paused = None
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None

    def _observe(self, event: dict[str, Any]) -> None:
        what = event.get("log_format")
        if what == RELEASING:
            self._error("EMFILE")
        elif what == CLOSED:
            self._dropped(1)
        elif what == COULD_NOT_ACCEPT:
            self._error(str(event.get("acceptError")))
        elif what != RESERVING:
            globalLogPublisher(event)

    def _dropped(self, n: int) -> None:
        if n:
            self.metrics.dropped.labels("no_descriptors").inc(n)
            self.summaries.add("closed {n} connections at once: out of file descriptors", n, level=LogLevel.warn)

    def _error(self, errno: str) -> None:
        self.metrics.accept_errors.labels(errno).inc()
        self.summaries.add(f"accept failed {{n}} times with {errno}", level=LogLevel.warn)
        if errno in _EXHAUSTED:
            self._exhausted = True
