"""CORS on every answer (issue 19 item 2): the answers the site gives
before routing (413, 408, 431, a malformed request's 400) and the 429s and
503s carry the CORS headers for an allowed origin, or the browser hides
them from the page, which takes them for network errors and sends the same
request again forever.  And, with no --cors-origin at all, a POST from a
page of another origin is counted and summarized (issue 19 item 3)."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.test.process import wait_until
from track.test.rawhttp import RawClient, connect, request
from track.test.run.test_summaries import capture
from track.test.support import serve
from track.web.clients.cors import CORS

ORIGIN = "https://shop.example"
BATCH = "/api/1.0/track/batch/"
USER = "/api/1.0/track/user/"
WAIT = 30.0


def head(answer: bytes) -> dict[str, str]:
    """The first answer's header fields, names lower-cased."""
    lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


class EarlyAnswersTests(TestCase):
    @inlineCallbacks
    def exchange(self, port: int, data: bytes, client: RawClient | None = None) -> Any:
        client = yield connect(port, client)
        self.addCleanup(client.abort)
        client.send(data)
        yield wait_until(lambda: b"\r\n\r\n" in client.received or client.closed.called, "an answer", WAIT)
        return client

    @inlineCallbacks
    def test_every_early_answer_carries_the_cors_headers(self) -> Any:
        port, _ = serve(self, cors_origin=ORIGIN, max_batch_body=1000, request_timeout=0.5)
        origin = {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"}
        cases = {
            "413 by Content-Length": (413, request(BATCH, b"x" * 2000, origin)),
            "413 while streaming": (413, request(BATCH, b"7d0\r\n" + b"x" * 2000 + b"\r\n0\r\n\r\n",
                                                 {**origin, "Transfer-Encoding": "chunked"})),
            "431": (431, b"POST " + USER.encode() + b" HTTP/1.1\r\nOrigin: " + ORIGIN.encode() +
                    b"\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"),
            "400 malformed": (400, b"POST " + USER.encode() + b" HTTP/1.1\r\nHost: a\r\nHost: b\r\nOrigin: " +
                              ORIGIN.encode() + b"\r\nContent-Length: 0\r\n\r\n"),
            "408": (408, b"POST " + USER.encode() + b" HTTP/1.1\r\nHost: x\r\nOrigin: " + ORIGIN.encode() +
                    b"\r\nContent-Length: 10\r\n\r\nabc"),
        }
        for name, (code, data) in cases.items():
            client = yield self.exchange(port, data)
            self.assertEqual(client.statuses()[:1], [code], name)
            headers = head(client.received)
            self.assertEqual(headers.get("access-control-allow-origin"), ORIGIN, (name, headers))
            self.assertEqual(headers.get("access-control-allow-credentials"), "true", name)
            self.assertIn("Retry-After", headers.get("access-control-expose-headers", ""), name)
        # An origin not allowed gets none (the 413 is still a 413).
        client = yield self.exchange(port, request(BATCH, b"x" * 2000, {"Origin": "https://evil.example"}))
        self.assertEqual(client.statuses(), [413])
        self.assertNotIn("access-control-allow-origin", head(client.received))

    @inlineCallbacks
    def test_429_and_a_refused_body_carry_them_too(self) -> Any:
        port, _ = serve(self, cors_origin=ORIGIN, rate_limit=1, max_batch=2)
        body = b'{"events": [{"type": "user", "ProfileID": 1, "Region": "eu"}, ' \
               b'{"type": "user", "ProfileID": 2, "Region": "eu"}]}'
        headers = {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"}
        codes = []
        for _ in range(3):
            client = yield self.exchange(port, request(BATCH, body, headers))
            codes += client.statuses()
            self.assertEqual(head(client.received).get("access-control-allow-origin"), ORIGIN, client.received)
        self.assertEqual(codes, [201, 429, 429])
        client = yield self.exchange(port, request(BATCH, b'{"events": [1, 2, 3]}', headers))
        self.assertEqual(client.statuses(), [413])  # over --max-batch, from the route
        self.assertEqual(head(client.received).get("access-control-allow-origin"), ORIGIN)


class UnconfiguredTests(TestCase):
    @inlineCallbacks
    def test_a_post_from_another_origin_without_cors_origin_is_counted_and_summarized(self) -> Any:
        events = capture(self)
        port, site = serve(self)
        body = b"ProfileID=1&Region=eu"
        sent = [
            {"Origin": "https://shop.example"},                # another origin: counted
            {"Origin": "null"},                                # a sandboxed frame or a file: page: counted
            {"Origin": "http://track.test", "Host": "track.test"},      # the collector's own page: not counted
            {"Origin": "http://track.test:80", "Host": "track.test"},   # the same, default port spelled out
            {},                                                # not a browser: not counted
        ]
        for extra in sent:
            client = yield connect(port)
            self.addCleanup(client.abort)
            client.send(request(USER, body, extra))
            yield client.closed.addTimeout(WAIT, reactor)
            self.assertEqual(client.statuses(), [201])  # stored: only the browser hides the answer
        self.assertIn(b"track_cors_unconfigured_total 2.0", site.metrics.render())
        site.summaries.flush()
        lines = [formatEvent(e) for e in events if "--cors-origin" in formatEvent(e)]
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(re.match(r"^2 POSTs came from pages of another origin, but no --cors-origin is set", lines[0]),
                        lines)

    @inlineCallbacks
    def test_with_cors_origin_set_nothing_is_counted(self) -> Any:
        port, site = serve(self, cors_origin="*")
        client = yield connect(port)
        self.addCleanup(client.abort)
        client.send(request(USER, b"ProfileID=1&Region=eu", {"Origin": "https://shop.example"}))
        yield client.closed.addTimeout(WAIT, reactor)
        self.assertEqual(client.statuses(), [201])
        self.assertIn(b"track_cors_unconfigured_total 0.0", site.metrics.render())


class ForeignTests(SynchronousTestCase):
    def test_own_and_foreign_origins(self) -> None:
        cors = CORS(())
        own = [(b"http://a.example", b"a.example"), (b"https://a.example:443", b"a.example"),
               (b"http://a.example", b"A.example:80"), (b"http://127.0.0.1:8080", b"127.0.0.1:8080")]
        for origin, host in own:
            self.assertFalse(cors.foreign(origin, host), (origin, host))
        foreign: list[tuple[bytes, bytes | None]] = [
            (b"http://b.example", b"a.example"), (b"https://a.example", b"a.example:80"),
            (b"http://127.0.0.1:8081", b"127.0.0.1:8080"), (b"null", b"a.example"), (b"http://a", None)]
        for other, at in foreign:
            self.assertTrue(cors.foreign(other, at), (other, at))
        self.assertFalse(cors.foreign(None, b"a.example"))
        self.assertFalse(CORS(["*"]).foreign(b"http://b.example", b"a.example"))
