"""The private twisted.web.http API that track/web/http/twistedhttp.py relies on.

Each test names the private attribute or method it checks.  When one fails
after a Twisted upgrade, that private API was removed or changed: read
track/web/http/twistedhttp.py, find what replaces it, and only then raise the
Twisted bound in setup.py.
"""

from __future__ import annotations

import inspect
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from track.web.http.twistedhttp import TIMEOUT_LINES, HTTPChannel

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def changed(name: str, what: str) -> str:
    return (f"Twisted's private {name} {what}; track/web/http/twistedhttp.py relies on it: "
            f"see there what track needs it for, before allowing this Twisted release in setup.py")


class Pending(Resource):
    """Keeps every request unanswered until the test finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[IRequest] = []

    def render(self, request: IRequest) -> Any:
        self.requests.append(request)
        return server.NOT_DONE_YET


class Recording(HTTPChannel):
    """Records what the private state says at the moments track reads it."""

    path_at_headers: bytes | None = None
    bad_requests = 0

    def allHeadersReceived(self) -> None:
        self.path_at_headers = self.request_path
        super().allHeadersReceived()

    def bad_request(self) -> None:
        self.bad_requests += 1
        super().bad_request()


def connect(resource: Resource) -> tuple[Recording, StringTransport]:
    site = server.Site(resource, reactor=Clock())
    site.protocol = Recording  # type: ignore[assignment]  # see TrackSite.protocol in track/web/http/site.py
    channel = site.buildProtocol(PEER)
    assert isinstance(channel, Recording)
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    return channel, transport


class HandlingRequestTests(SynchronousTestCase):
    """HTTPChannel._handlingRequest: True from the end of a request's body
    until its answer is finished."""

    NAME = "HTTPChannel._handlingRequest"

    def test_a_new_channel_is_not_handling_a_request(self) -> None:
        channel = http.HTTPChannel()
        self.assertTrue(hasattr(channel, "_handlingRequest"), changed(self.NAME, "is gone"))
        self.assertIs(channel._handlingRequest, False, changed(self.NAME, "no longer starts False"))

    def test_it_is_true_from_the_whole_body_until_the_answer_is_done(self) -> None:
        resource = Pending()
        channel, _ = connect(resource)
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
        self.assertIs(channel.handling_request, False, changed(self.NAME, "is set before the body is in"))
        channel.dataReceived(b"cd")
        self.assertIs(channel.handling_request, True, changed(self.NAME, "is not set once the body is in"))
        # A pipelined request arriving meanwhile waits; the flag stays set.
        channel.dataReceived(b"POST /y HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n")
        self.assertIs(channel.handling_request, True, changed(self.NAME, "is cleared by a pipelined request"))
        resource.requests[0].finish()
        # The answer is done: the pipelined request is parsed from Twisted's
        # buffer and is still arriving (its body is not in).
        self.assertIs(channel.handling_request, False, changed(self.NAME, "is not cleared when the answer is done"))
        self.assertEqual(len(resource.requests), 1)
        channel.dataReceived(b"ef")
        self.assertIs(channel.handling_request, True, changed(self.NAME, "is not set for a pipelined request"))
        self.assertEqual(len(resource.requests), 2)


class PathTests(SynchronousTestCase):
    """HTTPChannel._path: the request-target, from the request line until
    the body is in."""

    NAME = "HTTPChannel._path"

    def test_the_request_target_is_known_when_the_headers_are_in(self) -> None:
        channel, _ = connect(Pending())
        channel.dataReceived(b"POST /api/1.0/track/batch/?a=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(channel.path_at_headers, b"/api/1.0/track/batch/?a=1",
                         changed(self.NAME, "no longer holds the request-target when the headers are in"))
        self.assertEqual(channel._path, b"/api/1.0/track/batch/?a=1", changed(self.NAME, "is gone"))


class BadRequestTests(SynchronousTestCase):
    """HTTPChannel._respondToBadRequestAndDisconnect(): what Twisted calls
    for a request it cannot parse."""

    NAME = "HTTPChannel._respondToBadRequestAndDisconnect()"

    def test_it_is_a_method_of_no_arguments(self) -> None:
        method = getattr(http.HTTPChannel, "_respondToBadRequestAndDisconnect", None)
        if not callable(method):
            self.fail(changed(self.NAME, "is gone"))
        self.assertEqual(list(inspect.signature(method).parameters), ["self"],
                         changed(self.NAME, "takes other arguments now"))

    def test_twisted_calls_it_for_a_malformed_request(self) -> None:
        for request in (b"NOT A REQUEST LINE AT ALL\r\n\r\n",
                        b"POST / HTTP/1.1\r\nNo colon here\r\n\r\n",
                        b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            with self.subTest(request=request):
                channel, transport = connect(Pending())
                channel.dataReceived(request)
                self.assertEqual(channel.bad_requests, 1, changed(self.NAME, "is not called for " + repr(request)))
                # The default hook is Twisted's own answer.
                self.assertEqual(transport.value(), b"HTTP/1.1 400 Bad Request\r\n\r\n")


class VersionTests(SynchronousTestCase):
    """HTTPChannel._version: the request line's HTTP version, until the body is in."""

    NAME = "HTTPChannel._version"

    def test_the_version_is_known_when_the_headers_are_in(self) -> None:
        channel, _ = connect(Pending())
        channel.dataReceived(b"POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(channel.request_version, b"HTTP/1.0", changed(self.NAME, "is gone or holds another value"))


class PendingHeaderTests(SynchronousTestCase):
    """HTTPChannel.__header: the last header line, held until the next line."""

    NAME = "HTTPChannel.__header"

    def test_the_last_header_line_is_held_until_the_next(self) -> None:
        channel, _ = connect(Pending())
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nOrigin: https://o.example\r\nX-Lo")
        self.assertEqual(channel.pending_header, b"Origin: https://o.example",
                         changed(self.NAME, "is gone or holds another value"))
        self.assertIsNone(channel.requests[-1].requestHeaders.getRawHeaders(b"origin"))


class BareLFTests(SynchronousTestCase):
    """LineReceiver.delimiter (public) set to LF, and the CR of each line
    dropped: RFC 9112 2.2's bare-LF line ends are read like CRLF ones."""

    def test_a_bare_lf_request_is_the_same_request(self) -> None:
        for eol in (b"\n", b"\r\n"):
            with self.subTest(eol=eol):
                resource = Pending()
                channel, _ = connect(resource)
                channel.dataReceived(eol.join([b"POST /x?a=1 HTTP/1.1", b"Host: t", b"X-Y:  z ",
                                               b"Content-Length: 2", b"", b"ab"]))
                [request] = resource.requests
                self.assertEqual((request.method, request.uri, request.content.read()), (b"POST", b"/x?a=1", b"ab"))
                self.assertEqual(request.requestHeaders.getRawHeaders(b"x-y"), [b"z"])

    def test_a_stray_cr_is_still_refused(self) -> None:
        channel, _ = connect(Pending())
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: t\r\nX-Y: a\rb\r\n\r\n")
        self.assertEqual(channel.bad_requests, 1)


class Announcing(Recording):
    """Records each chunk size announced; refuses past 100."""

    def __init__(self) -> None:
        super().__init__()
        self.announced: list[int] = []

    def chunk_announced(self, size: int) -> bool:
        self.announced.append(size)
        if size > 100:
            assert self.transport is not None
            self.transport.write(b"refused")
            self.transport.loseConnection()
            return False
        return True


def connect_announcing(resource: Resource) -> tuple[Announcing, StringTransport]:
    site = server.Site(resource, reactor=Clock())
    site.protocol = Announcing  # type: ignore[assignment]
    channel = site.buildProtocol(PEER)
    assert isinstance(channel, Announcing)
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    return channel, transport


CHUNKED_HEAD = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


class ChunkedDecoderTests(SynchronousTestCase):
    """HTTPChannel._transferDecoder and _ChunkedTransferDecoder (its
    callbacks, _buffer, _dataReceived_* states), and Twisted answering a
    _MalformedChunkedDataError with _respondToBadRequestAndDisconnect()."""

    NAME = "_ChunkedTransferDecoder"

    def test_twisted_chooses_its_chunked_decoder_from_the_headers(self) -> None:
        site = server.Site(Pending(), reactor=Clock())
        site.protocol = http.HTTPChannel  # type: ignore[assignment]  # Twisted's own HTTP/1.1 channel, not track's
        channel = site.buildProtocol(PEER)
        assert isinstance(channel, http.HTTPChannel)
        channel.makeConnection(StringTransport(peerAddress=PEER))
        channel.dataReceived(CHUNKED_HEAD)
        decoder = channel._transferDecoder
        self.assertIs(type(decoder), http._ChunkedTransferDecoder, changed("HTTPChannel._transferDecoder",
                                                                           "no longer holds the chunked decoder"))
        for name in ("dataCallback", "finishCallback", "_buffer", "_dataReceived_CHUNK_LENGTH",
                     "_dataReceived_CRLF", "_dataReceived_TRAILER"):
            self.assertTrue(hasattr(decoder, name), changed(f"{self.NAME}.{name}", "is gone"))
        self.assertTrue(issubclass(http._MalformedChunkedDataError, Exception))

    def test_a_chunked_body_is_decoded_as_before(self) -> None:
        resource = Pending()
        channel, _ = connect_announcing(resource)
        channel.dataReceived(CHUNKED_HEAD + b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n")
        [request] = resource.requests
        self.assertEqual(request.content.read(), b"abcde")
        self.assertEqual(channel.announced[-3:], [3, 2, 0])
        self.assertEqual(channel.bad_requests, 0)

    def test_a_size_over_the_limit_is_refused_before_its_line_ends(self) -> None:
        channel, transport = connect_announcing(Pending())
        channel.dataReceived(CHUNKED_HEAD + b"F")
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"F")
        self.assertEqual(channel.announced, [15, 255])
        self.assertTrue(transport.value().startswith(b"refused"), changed(self.NAME, "is not stopped by an exception"))
        # Twisted's own answer to a malformed body went to our hook.
        self.assertEqual(channel.bad_requests, 1)

    def test_broken_framing_is_a_bad_request_at_once(self) -> None:
        for body in (b"3\nabc", b"3\r\nabc\n", b"3\r\nabc\r\n0\r\nX: 1\n", b"g\r\n", b"3x", b";\r\n"):
            with self.subTest(body=body):
                channel, transport = connect_announcing(Pending())
                channel.dataReceived(CHUNKED_HEAD + body)
                self.assertEqual(channel.bad_requests, 1)
                self.assertEqual(transport.value(), b"HTTP/1.1 400 Bad Request\r\n\r\n")


class TimeoutLogTests(SynchronousTestCase):
    """HTTPChannel._log and the lines timeoutConnection / forceAbortClient
    log through it: replaced, to drop those per-connection lines."""

    NAME = "HTTPChannel._log"

    def test_an_idle_timeout_logs_through_it_with_these_formats(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, events.append)  # type: ignore[arg-type]
        clock = Clock()
        plain = http.HTTPChannel()
        plain.callLater = clock.callLater  # type: ignore[method-assign,assignment]
        plain.abortTimeout = 1
        plain.makeConnection(StringTransport(peerAddress=PEER))
        plain.timeoutConnection()
        clock.advance(1)  # the connection did not go: forceAbortClient
        formats = {e.get("log_format") for e in events if e.get("log_namespace", "").startswith("twisted.web.http")}
        self.assertTrue(formats >= TIMEOUT_LINES, changed(self.NAME, f"no longer logs {set(TIMEOUT_LINES)}"))

    def test_ours_counts_the_timeout_and_logs_none_of_those_lines(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, events.append)  # type: ignore[arg-type]
        timed_out: list[bool] = []

        class Counting(HTTPChannel):
            def idle_timed_out(self) -> None:
                timed_out.append(True)

        channel = Counting()
        channel.callLater = Clock().callLater  # type: ignore[method-assign,assignment]  # forceAbortClient's timer
        channel.makeConnection(StringTransport(peerAddress=PEER))
        channel.timeoutConnection()
        self.assertEqual(timed_out, [True])
        self.assertEqual([e for e in events if e.get("log_format") in TIMEOUT_LINES], [])
