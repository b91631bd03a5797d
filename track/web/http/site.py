"""The HTTP Site: limits enforced while bytes arrive, no tracebacks, an access
log only when asked for, and a record of open connections so shutdown can
let each one finish its answer.

Limits live here, below the resource, because by the time a resource runs
Twisted has already buffered the whole body.  Here a body over its limit is
refused from its Content-Length (or, when chunked, as soon as it passes the
limit) without being kept, and a request that is not fully received within
the request timeout is answered 408, however slowly its bytes trickle in.

What this needs of Twisted's private HTTPChannel state is in
track/web/http/twistedhttp.py, and nowhere else.
"""

# Twisted's HTTPChannel, Request and Site methods carry no annotations, so
# strict mypy would report every call to them (super() included) as a call
# to an untyped function; every function of this module is annotated.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web import server

from track.logs import Logger, Summaries
from track.metrics import Metrics
from track.seams import NO_TAP, EventTap
from track.web.clients.anonymize import Addresses, Anonymizer
from track.web.clients.cors import CORS
from track.web.eventpath import OTHER, path_kind
from track.web.http.early import EARLY_REASONS, LINGER_BYTES, LINGER_SECONDS, Busy, early_cors_lines, raw_response
from track.web.http.rfc9112 import BadHead, check_host, origin_form
from track.web.http.twistedhttp import HTTPChannel
from track.web.responses import json_response

log = Logger(namespace="track.http")

DEFAULT_MAX_BODY = 64 * 1024


class _Channel(HTTPChannel):
    """An HTTPChannel that enforces body limits and a per-request deadline,
    and tells its Site when it closes."""

    site: TrackSite
    _receiving_since: float | None = None  # when the request being received began
    _refused = False
    _body_seen = 0
    _body_limit = 0
    _linger_budget = 0
    _linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.channels.add(self)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            # The answer is sent: drop what else comes, up to a budget, so
            # the client reads our answer instead of a reset.
            self._linger_budget -= len(data)
            if self._linger_budget < 0:
                self.tcp().abortConnection()
            return
        if self._receiving_since is None and not self.handling_request:
            # A request starts arriving (bytes of a pipelined one wait their
            # turn).  The Site's sweep answers 408 if it takes too long.
            self._receiving_since = self.site.now()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if not self._refused:  # lines already buffered when we refused
            super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        if self._refused:
            return
        headers = self.requests[-1].requestHeaders
        try:
            check_host(self.request_version, headers.getRawHeaders(b"host"))
            if self.request_path[:1] != b"/" and self.request_path != b"*":
                self.request_path, authority = origin_form(self.request_path)
                headers.setRawHeaders(b"host", [authority])  # RFC 9112 3.2.2: the target's host wins
        except BadHead as e:
            self.refuse(400, {"error": str(e)})
            return
        limit = self.site.body_limit(self.request_path)
        if self.length is not None and self.length > limit:
            self.refuse(413, {"error": "body too large", "max_bytes": limit})
            return
        self._body_limit, self._body_seen = limit, 0
        super().allHeadersReceived()
        if self.site.closing:
            self.persistent = False  # shutting down: answer this one, then close

    def body_chunk(self, size: int) -> bool:
        """Count body bytes as they arrive; False once past the limit."""
        self._body_seen += size
        if self._body_seen > self._body_limit:
            self.refuse(413, {"error": "body too large", "max_bytes": self._body_limit})
        return not self._refused

    def chunk_announced(self, size: int) -> bool:
        """A chunk size over what the body may still hold is refused as soon
        as its digits say so, not after waiting for its bytes."""
        if self._body_seen + size > self._body_limit:
            self.refuse(413, {"error": "body too large", "max_bytes": self._body_limit})
        return not self._refused

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        super().allContentReceived()

    def lineLengthExceeded(self, line: bytes) -> None:
        # One request or header line longer than LineReceiver.MAX_LENGTH.
        self.refuse(431, {"error": "request header too large"})

    def bad_request(self) -> None:
        # Twisted's answer to a malformed request line or too many header
        # bytes is a bare 400; make it the JSON every other error is.
        self.refuse(400, {"error": "malformed HTTP request"})

    def idle_timed_out(self) -> None:
        self.site.connection_timed_out("timed out {n} idle connections")

    def timed_out(self) -> None:
        self.site.connection_timed_out("answered 408 to {n} requests not received in time")
        self.refuse(408, {"error": "request not received in time",
                          "timeout_seconds": self.site.request_timeout})

    def refuse(self, code: int, payload: dict[str, Any]) -> None:
        """Answer and close now, keeping nothing more from this connection."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.setTimeout(None)  # the idle timer must not fire while we linger: one timeout is counted once
        transport = self.tcp()
        path = getattr(self, "request_path", None) or b""
        # Counted like a routed refusal: under the kind its path names (any
        # other path, or one never read, under "other").
        kind = path_kind(path) or OTHER
        self.site.metrics.rejected.labels(kind, EARLY_REASONS.get(code, "malformed")).inc()
        # The admin page's latest rejections (--admin-http).
        self.site.tap.refused_early(kind, code, payload, self.site.shown_peer(transport.getPeer()))
        if len(self.requests) > 1 or self.handling_request:
            # An earlier answer is still owed on this connection; a response
            # written now would overtake it, so just close.
            transport.abortConnection()
            return
        transport.write(raw_response(code, payload, self.cors_lines()))
        # Lingering close: send our side's FIN after the answer, keep reading
        # (and dropping) for a moment, then close.  Closing with unread input
        # would make the kernel reset the connection, and the client could
        # lose the answer.
        self._linger_budget = LINGER_BYTES
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is None:
            self.loseConnection()
            return
        half_close()
        self._linger = self.callLater(LINGER_SECONDS, transport.loseConnection)

    def cors_lines(self) -> bytes:
        return early_cors_lines(self.site.cors, self.requests, self.pending_header)

    def tcp(self) -> ITCPTransport:
        """The connection's transport, to abort or half-close it.

        `Protocol.transport` is typed `ITransport | None`; a connected
        channel's is a TCP or UNIX socket (or a test's stand-in), which has
        abortConnection() and loseWriteConnection() as ITCPTransport says."""
        return cast(ITCPTransport, self.transport)

    def _cancel_deadline(self) -> None:
        self._receiving_since = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)
        self.site.channel_closed(self)


class TrackRequest(server.Request):
    channel: _Channel

    def process(self) -> None:
        # Klein would answer a path that is not UTF-8 with an HTML 400 and
        # log a traceback; answer it like every other client mistake.
        try:
            if b"%" in self.path or not self.path.isascii():
                unquote_to_bytes(self.path.decode("ascii")).decode("utf-8")
        except UnicodeDecodeError:
            self.channel.site.cors.annotate(self)
            kind = path_kind(self.path)
            if kind is not None:
                self.channel.site.metrics.rejected.labels(kind, "malformed").inc()
            self.write(json_response(self, 400, {"error": "the URL is not valid UTF-8"}))
            self.finish()
            return
        if self.method == b"POST":
            self.channel.site.check_origin(self)
        super().process()

    def write(self, data: bytes) -> None:
        # An error answer to an event request goes to the admin page's
        # latest rejections (with --admin-http); a 201 costs one comparison.
        if self.code >= 400:
            site = self.site
            if isinstance(site, TrackSite) and site.tap is not NO_TAP:
                site.tap.rejected(self, data, site.addresses.stored(self))
        super().write(data)

    def handleContentChunk(self, data: bytes) -> None:
        if self.channel.body_chunk(len(data)):
            super().handleContentChunk(data)

    def connectionLost(self, reason: Failure) -> None:
        # Counted, never logged per client: a client that left before its
        # answer (not a connection track itself refused or closed).
        if not self.finished and not self.channel._refused and not self.channel.site.closing:
            self.channel.site.client_left()
        super().connectionLost(reason)


class TrackSite(server.Site):
    displayTracebacks = False
    # A plain HTTP/1.1 channel, tracked.  Twisted annotates HTTPFactory's
    # protocol as returning its private _GenericHTTPChannelProtocol (the
    # HTTP/2-capable wrapper), though Site and HTTPFactory ask no more of it
    # than an HTTPChannel: the annotation is narrower than the code.
    protocol = _Channel  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        resource: Any,
        access_log: bool = False,
        request_timeout: float | None = 30.0,
        reactor: Any = None,
        body_limit: Callable[[bytes], int] = lambda path: DEFAULT_MAX_BODY,
        max_connections: int | None = None,
        metrics: Metrics | None = None,
        cors: CORS | None = None,
        addresses: Addresses | None = None,
        tap: EventTap = NO_TAP,
    ) -> None:
        # track reads the raw body itself, strictly and once; Twisted's own
        # form parsing would double the work and answer bad multipart bodies
        # with a bare 400 of its own.
        super().__init__(
            resource,
            requestFactory=TrackRequest,
            # The idle timeout: a little later than the sweep's 408, so a
            # stalled request gets its answer before its connection goes.
            timeout=request_timeout + 1.0 if request_timeout else None,
            reactor=reactor,
            parsePOSTFormSubmission=False,
        )
        self.access_log = access_log
        self.request_timeout = request_timeout
        self.body_limit = body_limit
        self.channels: set[_Channel] = set()
        self.tap = tap  # with --admin-http, the live page's latest rejections
        # The client as it is logged, stored and shown (--trusted-proxy, --anonymize-ip).
        self.addresses = addresses or Addresses((), Anonymizer())
        self.max_connections = max_connections
        self.metrics = metrics if metrics is not None else Metrics()
        self.cors = cors if cors is not None else CORS(())
        self.summaries = Summaries(log, self.reactor)
        self.closing = False
        self._sweep: LoopingCall | None = None
        self._all_closed: list[Deferred[None]] = []

    def now(self) -> float:
        return self.reactor.seconds()

    def startFactory(self) -> None:
        super().startFactory()
        if self.request_timeout:
            # One timer for all connections, not one per request.
            self._sweep = LoopingCall(self._expire, self.request_timeout)
            self._sweep.clock = self.reactor
            self._sweep.start(min(1.0, self.request_timeout / 4), now=False)

    def stopFactory(self) -> None:
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self.summaries.stop()
        super().stopFactory()

    def buildProtocol(self, addr: Any) -> Any:
        """An HTTP channel, or past `max_connections` open ones, a Busy
        answer: a client is told at once to come back later rather than
        left waiting, and the process keeps descriptors for the pool, the
        spool and the connections it serves."""
        if self.max_connections is not None and len(self.channels) >= self.max_connections:
            self.metrics.dropped.labels("max_connections").inc()
            self.summaries.add("answered 503 to {n} connections over --max-connections", level=LogLevel.warn)
            busy = Busy(self.reactor)
            busy.factory = self
            return busy
        return super().buildProtocol(addr)

    def check_origin(self, request: TrackRequest) -> None:
        """Count (and summarize) a POST from a page of another origin while
        no --cors-origin is set: its events may be stored, but the browser
        hides every answer, so the page sends them again and again."""
        if self.cors.origins:
            return
        headers = request.requestHeaders
        origins = headers.getRawHeaders(b"origin")
        if origins is None:
            return
        hosts = headers.getRawHeaders(b"host")
        if self.cors.foreign(origins[0], hosts[0] if hosts else None):
            self.metrics.cors_unconfigured.inc()
            self.summaries.add("{n} POSTs came from pages of another origin, but no --cors-origin is set: the "
                               "browser hides every answer from those pages, so they send their events again "
                               "and again (start track with --cors-origin and the pages' origin)",
                               level=LogLevel.warn)

    def client_left(self) -> None:
        """Count a client that closed its connection before its answer."""
        self.metrics.dropped.labels("client_left").inc()
        self.summaries.add("{n} clients left before their answer")

    def connection_timed_out(self, what: str) -> None:
        """Count a connection closed for a timeout, and summarize it."""
        self.metrics.timed_out.inc()
        self.summaries.add(what)

    def _expire(self, timeout: float) -> None:
        """Answer 408 to every request not fully received within the timeout."""
        deadline = self.now() - timeout
        for channel in list(self.channels):
            since = channel._receiving_since
            if since is not None and since <= deadline:
                channel.timed_out()

    def shown_peer(self, peer: Any) -> Any:
        """The peer as the live page shows it."""
        return self.addresses.shown_peer(peer)

    def logged_client(self, request: Any) -> str:
        """The client an access log line names."""
        return self.addresses.logged(request)

    def log(self, request: Any) -> None:
        # The original kept no access log; a line per event is a real cost.
        if self.access_log:
            log.info(
                "{client} {method} {uri} {code}",
                client=self.logged_client(request),
                method=request.method.decode("latin-1"),
                # A suppressed ID's request: not its query string, which may hold the ID.
                uri=(request.path if getattr(request, "track_suppressed", False) else request.uri).decode("latin-1"),
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
        self.closing = True
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
            channel.tcp().abortConnection()
