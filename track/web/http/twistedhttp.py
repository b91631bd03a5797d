"""The private parts of `twisted.web.http` that track's HTTP channel needs.

Twisted has no public way to do these things track must do while a
request's bytes arrive, before Twisted has buffered its body:

- tell whether the channel is still answering an earlier request,
- read (and rewrite, for an absolute-form target) the request's target and
  read its HTTP version once its headers are in, and read the last header
  line received while the next one is still arriving,
- answer a malformed request in JSON instead of a bare 400,
- refuse a chunked body whose announced chunk size is over the limit, or
  whose framing has a bare LF, as soon as that is known instead of waiting
  (for bytes that will never come) until the request times out.
- count a connection closed for being idle instead of logging a line for it.

This module is the only one that touches Twisted's private names; each one
below says why it is needed.  `track/test/web/test_twistedhttp.py` fails,
naming the private API, when a Twisted release removes or changes one of
them, and setup.py keeps Twisted below the next major release until they
have been checked again.
"""

# Twisted's HTTPChannel methods carry no annotations, so strict mypy would
# report the call to the one overridden here as a call to an untyped function.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger
from twisted.web import http

from track.logs import dropping

_HEX = b"0123456789abcdefABCDEF"
_CR = 0x0D
_LF = 0x0A
# What HTTPChannel.timeoutConnection and forceAbortClient log for every
# idle connection they close: 5,000 idle clients made 5,000 lines.  track
# counts them instead (track_connections_timed_out_total, and a summary line).
TIMEOUT_LINES = frozenset({"Timing out client: {peer}", "Forcibly timing out client: {peer}"})


class HTTPChannel(http.HTTPChannel):
    """`http.HTTPChannel`, with the private state track reads under public
    names, public hooks for malformed requests and announced chunk sizes, and
    bare-LF line endings accepted in the request head."""

    # RFC 9112 section 2.2: "a recipient MAY recognize a single LF as a line
    # terminator and ignore any preceding CR".  LineReceiver's `delimiter`
    # is public; Twisted's default, CRLF, leaves a bare-LF client waiting
    # for a line end that never comes.  Only the request line and headers
    # are read as lines; chunked framing has its own parser, below, which
    # keeps CRLF (and refuses a bare LF at once).
    delimiter = b"\n"

    # Twisted sets these in unannotated code; these declarations only give
    # them their types.  Each is read once per request, through the
    # properties below.
    _handlingRequest: bool  # set in __init__, allContentReceived, requestDone
    _path: bytes  # set in lineReceived, deleted in allContentReceived
    _version: bytes  # likewise
    _transferDecoder: object  # set in _maybeChooseTransferDecoder, reset in allContentReceived

    # Private `HTTPChannel._log`, the Logger its methods log through (a
    # class attribute): replaced by one that drops the per-connection
    # timeout lines above and passes every other event on unchanged.
    _log = Logger(observer=dropping(TIMEOUT_LINES))

    def lineReceived(self, line: bytes) -> None:
        if line[-1:] == b"\r":
            line = line[:-1]
        super().lineReceived(line)

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

    @request_path.setter
    def request_path(self, target: bytes) -> None:
        """Replace the request-target (an absolute-form one by its path):
        `allContentReceived` hands `_path` to the Request."""
        self._path = target

    @property
    def request_version(self) -> bytes:
        """b"HTTP/1.1" or b"HTTP/1.0" (Twisted refuses any other), from the
        request line, like `request_path`.  Private `HTTPChannel._version`."""
        return self._version

    @property
    def pending_header(self) -> bytes:
        """The last header line received, which Twisted holds back until
        the next line shows whether it continues (an obsolete folded
        line); b"" if none.  Private `HTTPChannel.__header` (name-mangled):
        a request refused on its next line (one too long: 431) would
        otherwise lose it, and with it an Origin its answer must name."""
        header: bytes = getattr(self, "_HTTPChannel__header", b"")
        return header

    def allHeadersReceived(self) -> None:
        # Private `HTTPChannel._transferDecoder` and `_ChunkedTransferDecoder`:
        # the decoder Twisted chose from the headers.  A chunked one is
        # swapped for the strict one below before any of the body arrives.
        decoder = self._transferDecoder
        if type(decoder) is http._ChunkedTransferDecoder:
            self._transferDecoder = StrictChunkedDecoder(decoder.dataCallback, decoder.finishCallback,
                                                         self.chunk_announced)
        super().allHeadersReceived()

    def chunk_announced(self, size: int) -> bool:
        """A chunk of at least `size` bytes is announced (called again as
        more of its size line arrives).  False refuses the request; the
        channel must then have answered it.  By default, any size."""
        return True

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


class ChunkRefused(http._MalformedChunkedDataError):
    """The channel refused the request when a chunk was announced, and has
    answered it.  A `_MalformedChunkedDataError` so that Twisted's
    `rawDataReceived` stops decoding (its answer to a malformed body, our
    `bad_request`, then finds the request answered already)."""


class StrictChunkedDecoder(http._ChunkedTransferDecoder):
    """Twisted's chunked decoder, which waits for a whole size line (up to
    1 KiB) before reading it, and for a CRLF wherever the framing has one.
    This one also looks at each size line while it arrives: a size over
    what the channel accepts (`FFFFFFFF...`) is refused once its digits say
    so, and a bare LF, a size line not starting with a hex digit, or
    anything but CR after the digits and extensions is malformed at once.

    Private `_ChunkedTransferDecoder` with its `_buffer`, `_dataReceived_*`
    state methods and `_MalformedChunkedDataError`."""

    def __init__(self, dataCallback: Callable[[bytes], None], finishCallback: Callable[[bytes], None],
                 announce: Callable[[int], bool]) -> None:
        super().__init__(dataCallback, finishCallback)
        self.announce = announce

    def _dataReceived_CHUNK_LENGTH(self) -> bool:
        line = self._buffer[: http.maxChunkSizeLineLength + 2]
        lf = line.find(b"\n")
        if lf != -1:
            if lf == 0 or line[lf - 1] != _CR:
                raise http._MalformedChunkedDataError("bare LF in a chunk size line")
            line = line[: lf - 1]
        rest = line.lstrip(_HEX)
        digits = len(line) - len(rest)
        if rest:
            ext = rest.find(b";")
            if not digits or rest[: ext if ext != -1 else len(rest)].strip(b" \t\r"):
                raise http._MalformedChunkedDataError("invalid chunk size")
        significant = line[:digits].lstrip(b"0")[:17]  # 17 hex digits are past any limit
        if digits and not self.announce(int(significant or b"0", 16)):
            raise ChunkRefused("chunk too large")
        return bool(super()._dataReceived_CHUNK_LENGTH())

    def _dataReceived_CRLF(self) -> bool:
        if self._buffer[0] != _CR:
            raise http._MalformedChunkedDataError("chunk data not followed by CRLF")
        return bool(super()._dataReceived_CRLF())

    def _dataReceived_TRAILER(self) -> bool:
        lf = self._buffer.find(b"\n")
        if lf != -1 and (lf == 0 or self._buffer[lf - 1] != _CR):
            raise http._MalformedChunkedDataError("bare LF in the trailer section")
        return bool(super()._dataReceived_TRAILER())
