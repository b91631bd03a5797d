"""The private parts of `twisted.web.http` that track's HTTP channel needs.

Twisted has no public way to do three things track must do while a request's
bytes arrive, before Twisted has buffered its body:

- tell whether the channel is still answering an earlier request,
- read the request's path once its headers are in,
- answer a malformed request in JSON instead of a bare 400,
- count a connection closed for being idle instead of logging a line for it.

This module is the only one that touches Twisted's private names; each one
below says why it is needed.  `track/test/test_twistedhttp.py` fails,
naming the private API, when a Twisted release removes or changes one of
them, and setup.py keeps Twisted below the next major release until they
have been checked again.
"""

# Twisted's HTTPChannel methods carry no annotations, so strict mypy would
# report the call to the one overridden here as a call to an untyped function.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.logger import Logger
from twisted.web import http

from track.logs import dropping

# What HTTPChannel.timeoutConnection and forceAbortClient log for every
# idle connection they close: 5,000 idle clients made 5,000 lines.  track
# counts them instead (track_connections_timed_out_total, and a summary line).
TIMEOUT_LINES = frozenset({"Timing out client: {peer}", "Forcibly timing out client: {peer}"})


class HTTPChannel(http.HTTPChannel):
    """`http.HTTPChannel`, with the private state track reads under public
    names, and a public hook for malformed requests."""

    # Twisted sets both in unannotated code; these declarations only give
    # them their types.  Each is read once per request, through the
    # properties below.
    _handlingRequest: bool  # set in __init__, allContentReceived, requestDone
    _path: bytes  # set in lineReceived, deleted in allContentReceived

    # Private `HTTPChannel._log`, the Logger its methods log through (a
    # class attribute): replaced by one that drops the per-connection
    # timeout lines above and passes every other event on unchanged.
    _log = Logger(observer=dropping(TIMEOUT_LINES))

    @property
    def handling_request(self) -> bool:
        """True from the end of a request's body until its answer is done
        (and after the last answer of a closing connection).

        Private `HTTPChannel._handlingRequest`: no public attribute says
        this.  `requests` is not the same: it also holds a request whose
        bytes are still arriving, including a pipelined one that Twisted
        replays from its buffer after the answer before it."""
        return self._handlingRequest

    @property
    def request_path(self) -> bytes:
        """The request-target of the request being received, as sent.
        Only between its request line and the end of its body.

        Private `HTTPChannel._path`, which `lineReceived` parses from the
        request line: the Request object learns its path and URI only in
        `requestReceived`, after the whole body, which is too late to refuse
        a body by its Content-Length."""
        return self._path

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Private `HTTPChannel._respondToBadRequestAndDisconnect()`: Twisted
        # calls it for a malformed request line, a bad header, too many
        # header bytes or headers, or a broken chunked body, and writes a
        # bare "400 Bad Request".  Overriding it is the only way to give
        # those requests the same JSON answer as any other client mistake.
        self.bad_request()

    def timeoutConnection(self) -> None:
        # TimeoutMixin's hook: the connection was idle for the Site's
        # timeout.  Twisted closes it (and logs the line dropped above).
        self.idle_timed_out()
        super().timeoutConnection()

    def idle_timed_out(self) -> None:
        """Called when a connection is closed for being idle; by default
        nothing."""

    def bad_request(self) -> None:
        """Answer a request Twisted could not parse.  By default, Twisted's
        own bare 400, then close."""
        super()._respondToBadRequestAndDisconnect()
