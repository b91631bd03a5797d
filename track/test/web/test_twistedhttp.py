"""The private twisted.web.http API that track/web/twistedhttp.py relies on.

Each test names the private attribute or method it checks.  When one fails
after a Twisted upgrade, that private API was removed or changed: read
track/web/twistedhttp.py, find what replaces it, and only then raise the
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

from track.web.twistedhttp import TIMEOUT_LINES, HTTPChannel

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def changed(name: str, what: str) -> str:
    return (f"Twisted's private {name} {what}; track/web/twistedhttp.py relies on it: "
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
    site.protocol = Recording  # type: ignore[assignment]  # see TrackSite.protocol in track/web/site.py
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
        channel.makeConnection(StringTransport(peerAddress=PEER))
        channel.timeoutConnection()
        self.assertEqual(timed_out, [True])
        self.assertEqual([e for e in events if e.get("log_format") in TIMEOUT_LINES], [])
