"""Answers given on a connection before any request is routed: whole raw
responses that close it (a 400, 408, 413 or 431 refused by the channel), and
the 503 for a connection over --max-connections."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from track.web.clients.cors import CORS
from track.web.responses import reason

# The reason a refusal before routing is counted under, in
# track_events_rejected_total (the routes count theirs in track/web/app.py).
EARLY_REASONS = {400: "malformed", 408: "timeout", 413: "too_large", 431: "header_too_large"}
# A refused connection's lingering close: what is still read (and dropped).
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024  # dropped unread, never kept
BUSY_LINGER_SECONDS = 1.0  # a connection answered 503 for --max-connections
BUSY_LINGER_BYTES = 64 * 1024


def raw_response(code: int, payload: dict[str, Any], headers: bytes = b"") -> bytes:
    """A complete JSON response that closes the connection, for answers given
    before (or instead of) a Request being processed.  `headers`: more
    header lines, each ending in CRLF."""
    body = json.dumps(payload).encode()
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s" \
        b"Connection: close\r\n\r\n%s" % (
        code, reason(code), len(body), headers, body,
    )


BUSY_RESPONSE = raw_response(503, {"error": "too many connections", "retry_after": 1}, b"Retry-After: 1\r\n")


def early_cors_lines(cors: CORS, requests: Sequence[Any], pending_header: bytes) -> bytes:
    """The CORS header lines for an early answer, from the Origin of the
    request being received (if its headers got that far): a script can
    read a 413 or a 408 only with them, and would otherwise take it for
    a network error and send the same request again."""
    if not cors.origins:
        return b""
    request = requests[-1] if requests else None
    origins = request.requestHeaders.getRawHeaders(b"origin") if request is not None else None
    origin = origins[0] if origins else None
    if origin is None:  # the line before the one refused (431) is still held back
        name, _, value = pending_header.partition(b":")
        if name.strip().lower() == b"origin":
            origin = value.strip()
    return b"".join(b"%s: %s\r\n" % header for header in cors.headers(origin))


class Busy(Protocol):
    """A connection over `--max-connections`: answered 503 + Retry-After at
    once and closed.  Its side is half-closed after the answer and what the
    client still sends is dropped for a moment (up to a budget), so the
    client reads the answer instead of a reset; its descriptor is free
    again when the client closes, or after BUSY_LINGER_SECONDS."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._budget = BUSY_LINGER_BYTES
        self._linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        transport = cast(ITCPTransport, self.transport)
        transport.write(BUSY_RESPONSE)
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is None:
            transport.loseConnection()
            return
        half_close()
        self._linger = self.clock.callLater(BUSY_LINGER_SECONDS, transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        self._budget -= len(data)
        if self._budget < 0:
            cast(ITCPTransport, self.transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
