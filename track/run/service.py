"""The running service: listen, serve, and shut down in the one safe order.

`TrackService` is a MultiService of four parts, started in this order and
stopped in the reverse one, each stop waiting for the one before it:

1. storage: the database pool;
2. the pipeline: writer, spool and batcher;
3. the HTTP connections;
4. listening on `--http`: Twisted's own service for an endpoint string
   (`strports.service`, as `twistd web` uses), which fails start-up
   synchronously when the address is unusable; stopped first, it accepts
   what the kernel already queued before its socket closes;
5. extras: a worker's reports to its parent and the admin listener
   (track/admin), which stop before anything else.

On SIGTERM/SIGINT twistd stops this service and waits for the Deferred:
stop accepting, let every connection finish the answer it owes, flush every
buffer and wait for the commits, then close the pool.  A 201 therefore
always names a committed row, even for requests caught by the shutdown.

Twisted's `twisted.application.service` carries no annotations, so each
call into it is marked `no-untyped-call` for mypy.
"""

from __future__ import annotations

import cProfile
from collections.abc import Sequence
from typing import Any, NoReturn

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, TimeoutError, maybeDeferred
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from track.logs import Logger
from track.pipeline.batcher import Batcher
from track.pipeline.writer import Writer
from track.run.accepting import AcceptGuard
from track.storage.store import Store
from track.web.http.site import TrackSite

log = Logger(namespace="track.service")
_MAX_ACCEPT_ROUNDS = 10  # each accepts what the listen backlog holds


class ListenError(RuntimeError):
    """The HTTP endpoint could not be opened."""


def describe(address: Any) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    return f"unix:{getattr(address, 'name', address)}"


@implementer(IListeningPort)
class _AnsweringPort:
    """A listening port that, told to stop, first accepts the connections
    the kernel has already queued: their clients connected (and may have
    sent a whole request) before the signal, so they are answered like any
    request in progress instead of being reset when the socket closes.
    Bounded: a flood of new connections cannot hold the shutdown."""

    def __init__(self, port: IListeningPort, site: TrackSite, guard: AcceptGuard | None = None) -> None:
        self.port = port
        self.site = site
        self.guard = guard

    def startListening(self) -> None:
        self.port.startListening()

    def stopListening(self) -> Deferred[None] | None:
        if self.guard is not None:
            self.guard.stop()
        accept = getattr(self.port, "doRead", None)  # IReadDescriptor.doRead of a listening port
        for _ in range(_MAX_ACCEPT_ROUNDS):
            before = len(self.site.channels)
            if accept is None or accept() is not None or len(self.site.channels) == before:
                break
        return self.port.stopListening()

    def getHost(self) -> IAddress:
        return self.port.getHost()


@implementer(IStreamServerEndpoint)
class _HTTPEndpoint:
    """The `--http` endpoint as the listening service uses it: success logs
    the real address (with `tcp:0`, the port the kernel chose), failure is
    one short ListenError, and the port it gives answers the accept queue
    before it closes, its accept errors counted and paused when out of
    descriptors (AcceptGuard)."""

    def __init__(self, endpoint: IStreamServerEndpoint, site: TrackSite) -> None:
        self.endpoint = endpoint
        self.site = site
        self.port: IListeningPort | None = None

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.endpoint.listen(protocolFactory).addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        log.info("track listening on {address}", address=describe(port.getHost()))
        guard = AcceptGuard(port, self.site.reactor, self.site.metrics, self.site.summaries)
        return _AnsweringPort(port, self.site, guard if guard.install() else None)

    @staticmethod
    def _failed(failure: Failure) -> NoReturn:
        why = getattr(failure.value, "socketError", None) or failure.value
        # Short: twistd shows only 100 characters of it when daemonizing.
        raise ListenError(f"cannot listen: {why}")


class _Storage(Service):
    """The database pool: closed last, when every write has committed."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.store.close()
        log.info("all events flushed; database pool closed")


class _Pipeline(Service):
    """Writer, spool and batcher: the spool replays what an earlier run left
    once started; on stop, every buffered event is written (or spooled)."""

    def __init__(self, batcher: Batcher, writer: Writer) -> None:
        self.batcher = batcher
        self.writer = writer

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.writer.spool is not None:
            self.writer.spool.start()
        self.writer.start()  # replays a spool left by an earlier run

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._flush())

    async def _flush(self) -> None:
        await self.batcher.drain()
        await self.writer.stop()
        if self.writer.spool is not None:
            self.writer.spool.close()


class _Connections(Service):
    """The HTTP connections: on stop, each finishes the answer it owes (idle
    ones close at once); any still open after the timeout is aborted."""

    def __init__(self, site: TrackSite, clock: IReactorTime, timeout: float) -> None:
        self.site = site
        self.clock = clock
        self.timeout = timeout

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        log.info("shutting down: answering requests in progress, then flushing")
        closed = self.site.close_connections()
        closed.addTimeout(self.timeout, self.clock)
        try:
            await closed
        except TimeoutError:
            log.warn("connections still open after {t}s; closing them", t=self.timeout)
            self.site.abort_connections()


class TrackService(MultiService):
    """Storage, pipeline, connections and listening (see the module's
    docstring), with the CPU profile (`--cpuprofile`) around them all."""

    def __init__(
        self,
        description: str,
        site: TrackSite,
        batcher: Batcher,
        writer: Writer,
        store: Store,
        clock: Any,
        shutdown_timeout: float = 30.0,
        cpuprofile: str | None = None,
        extra: Sequence[Service] = (),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.description = description
        self.site = site
        self.cpuprofile = cpuprofile
        self._profiler: cProfile.Profile | None = None
        listening = strports.service(description, site, clock)
        self._endpoint = listening.endpoint = _HTTPEndpoint(listening.endpoint, site)
        parts: list[Service] = [
            _Storage(store),
            _Pipeline(batcher, writer),
            _Connections(site, clock, shutdown_timeout),
            listening,
            # After the listener, so stopped before it: the worker's reports
            # and the admin listener (--admin-http).
            *extra,
        ]
        for part in parts:
            part.setServiceParent(self)  # type: ignore[no-untyped-call]

    @property
    def port(self) -> Any:
        """The IListeningPort once listening (None before); Any, as callers
        read what its kind of address has (`getHost().port` for TCP)."""
        return self._endpoint.port

    def privilegedStartService(self) -> None:
        # Listening happens here, before twistd drops privileges; an
        # unusable address raises ListenError, which twistd prints (or the
        # daemonizing parent does) before exiting non-zero.
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        if self.port is None:
            raise ListenError("cannot listen: listening did not complete")

    def startService(self) -> None:
        if self.cpuprofile:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        super().startService()  # type: ignore[no-untyped-call]

    def stopService(self) -> Deferred[None]:
        """Stop the parts in reverse order, each after the one before it has
        finished (MultiService's own would stop them all at once)."""
        Service.stopService(self)  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        parts: list[Service] = list(self)
        for part in reversed(parts):
            await maybeDeferred(part.stopService)
        if self._profiler is not None and self.cpuprofile:
            self._profiler.disable()
            self._profiler.dump_stats(self.cpuprofile)
            log.info("CPU profile written to {path}", path=self.cpuprofile)
