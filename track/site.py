"""The HTTP Site: no tracebacks, an access log only when asked for, and a
record of open connections so shutdown can let each one finish its answer."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.web import http, server

from track.logs import Logger

log = Logger(namespace="track.http")


class _Channel(http.HTTPChannel):
    """An HTTPChannel that tells its Site when it closes."""

    site: "TrackSite"

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.channels.add(self)

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.site.channel_closed(self)


class TrackSite(server.Site):
    displayTracebacks = False
    protocol = _Channel  # a plain HTTP/1.1 channel, tracked
    noisy = False

    def __init__(
        self,
        resource: Any,
        access_log: bool = False,
        timeout: float | None = 30.0,
        reactor: Any = None,
    ) -> None:
        # track reads the raw body itself, strictly and once; Twisted's own
        # form parsing would double the work and answer bad multipart bodies
        # with a bare 400 of its own.
        super().__init__(resource, timeout=timeout, reactor=reactor, parsePOSTFormSubmission=False)
        self.access_log = access_log
        self.channels: set[_Channel] = set()
        self._all_closed: list[Deferred[None]] = []

    def log(self, request: Any) -> None:
        # The original kept no access log; a line per event is a real cost.
        if self.access_log:
            log.info(
                "{client} {method} {uri} {code}",
                client=getattr(request.getClientAddress(), "host", "-"),
                method=request.method.decode("latin-1"),
                uri=request.uri.decode("latin-1"),
                code=request.code,
            )

    def channel_closed(self, channel: _Channel) -> None:
        self.channels.discard(channel)
        if not self.channels:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    def close_connections(self) -> Deferred[None]:
        """Close idle connections now and busy ones after their answer.

        Fires when every connection is gone.
        """
        for channel in list(self.channels):
            channel.persistent = False
            if not channel.requests:
                channel.loseConnection()
        if not self.channels:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._all_closed.append(d)
        return d

    def abort_connections(self) -> None:
        for channel in list(self.channels):
            channel.transport.abortConnection()
