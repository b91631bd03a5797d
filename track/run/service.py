"""The running service: listen, serve, and shut down in the one safe order.

On SIGTERM/SIGINT twistd stops this service and waits for the Deferred:
stop accepting, let every connection finish the answer it owes, flush every
buffer and wait for the commits, then close the pool.  A 201 therefore
always names a committed row, even for requests caught by the shutdown.
"""

from __future__ import annotations

import cProfile
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError, inlineCallbacks
from twisted.internet.interfaces import IReactorTime, IStreamServerEndpoint
from twisted.python.failure import Failure

from track.logs import Logger
from track.pipeline.batcher import Batcher
from track.pipeline.writer import Writer
from track.storage.store import Store
from track.web.site import TrackSite

log = Logger(namespace="track.service")
_MAX_ACCEPT_ROUNDS = 10  # each accepts what the listen backlog holds


class ListenError(RuntimeError):
    """The HTTP endpoint could not be opened."""


def describe(address: Any) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    return f"unix:{getattr(address, 'name', address)}"


class TrackService(Service):
    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        description: str,
        site: TrackSite,
        batcher: Batcher,
        writer: Writer,
        store: Store,
        clock: IReactorTime,
        shutdown_timeout: float = 30.0,
        cpuprofile: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.description = description
        self.site = site
        self.batcher = batcher
        self.writer = writer
        self.store = store
        self.clock = clock
        self.shutdown_timeout = shutdown_timeout
        self.cpuprofile = cpuprofile
        self._profiler: cProfile.Profile | None = None
        self.port: Any = None

    def privilegedStartService(self) -> None:
        # Listen before twistd drops privileges, and fail start-up (with a
        # message the daemonizing parent prints) if the address is unusable.
        outcome: list[Any] = []
        self.endpoint.listen(self.site).addBoth(outcome.append)
        if not outcome or isinstance(outcome[0], Failure):
            error = outcome[0].value if outcome else None
            why = getattr(error, "socketError", None) or error or "listening did not complete"
            # Short: twistd shows only 100 characters of it when daemonizing.
            raise ListenError(f"cannot listen: {why}")
        self.port = outcome[0]
        log.info("track listening on {address}", address=describe(self.port.getHost()))
        super().privilegedStartService()

    def startService(self) -> None:
        if self.cpuprofile:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        super().startService()
        if self.writer.spool is not None:
            self.writer.spool.start()
        self.writer.start()  # replays a spool left by an earlier run

    def _accept_queued(self) -> None:
        """Accept the connections the kernel has already queued: their
        clients connected (and may have sent a whole request) before the
        signal, so they are answered like any request in progress instead
        of being reset when the socket closes.  Bounded: a flood of new
        connections cannot hold the shutdown."""
        accept = getattr(self.port, "doRead", None)  # IReadDescriptor.doRead of a listening port
        for _ in range(_MAX_ACCEPT_ROUNDS):
            before = len(self.site.channels)
            if accept is None or accept() is not None or len(self.site.channels) == before:
                return

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            self._accept_queued()
            yield self.port.stopListening()
        log.info("shutting down: answering requests in progress, then flushing")
        closed: Deferred[None] = self.site.close_connections()
        closed.addTimeout(self.shutdown_timeout, self.clock)
        try:
            yield closed
        except TimeoutError:
            log.warn("connections still open after {t}s; closing them", t=self.shutdown_timeout)
            self.site.abort_connections()
        yield self.batcher.drain()
        yield self.writer.stop()
        if self.writer.spool is not None:
            self.writer.spool.close()
        self.store.close()
        log.info("all events flushed; database pool closed")
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(self.cpuprofile)
            log.info("CPU profile written to {path}", path=self.cpuprofile)
