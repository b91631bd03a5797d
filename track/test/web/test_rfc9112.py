"""RFC 9112 strictness, over raw sockets: against the service in this
process and against a real `twistd track` child.

Every refused request must be answered at once (the request timeout is
set far beyond the test's own bound, so an answer that waited for it
would fail the test) and must leave nothing stored.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.test.process import TwistdTrack, port_of
from track.test.rawhttp import RawClient, connect, request
from track.test.support import dsn_text, execute, serve, sqlite_dsn
from track.web.http.rfc9112 import BadHead, check_host, origin_form

PATH = "/api/1.0/track/user/"
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
ANSWER_WITHIN = 30.0  # seconds; the server's own request timeout is 600
MAX_BODY = 4096


def event(n: int) -> bytes:
    return b"ProfileID=%d&Region=eu" % n


def head(request_line: bytes, *headers: bytes, body: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    """A request with exactly these header lines (no Host unless given)."""
    lines = [request_line, *headers, b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"".join(line + eol for line in lines) + eol + body


def chunked() -> bytes:
    """The head of a chunked POST; its body follows."""
    return request(PATH, b"", {"Transfer-Encoding": "chunked"})


def json_body(raw: bytes) -> Any:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def header(raw: bytes, name: bytes) -> bytes | None:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.lower() == name.lower():
            return value.strip()
    return None


class RequestHeadTests(SynchronousTestCase):
    """The pure checks, one rule each."""

    def test_http11_needs_exactly_one_valid_host(self) -> None:
        check_host(b"HTTP/1.1", [b"track.test:8080"])
        check_host(b"HTTP/1.1", [b"[2001:db8::1]:80"])
        check_host(b"HTTP/1.1", [b""])  # RFC 9110 7.2 lets a client send it empty
        check_host(b"HTTP/1.0", None)  # HTTP/1.0 had no Host
        for version, hosts, message in ((b"HTTP/1.1", None, "missing Host header"),
                                        (b"HTTP/1.1", [b"a", b"b"], "more than one Host header"),
                                        (b"HTTP/1.0", [b"a", b"a"], "more than one Host header"),
                                        (b"HTTP/1.1", [b"a/b"], "invalid Host header"),
                                        (b"HTTP/1.1", [b"a b"], "invalid Host header"),
                                        (b"HTTP/1.1", [b"a:8o"], "invalid Host header")):
            with self.subTest(hosts=hosts):
                self.assertRaisesRegex(BadHead, message, check_host, version, hosts)

    def test_absolute_form_becomes_a_path_and_an_authority(self) -> None:
        self.assertEqual(origin_form(b"http://track.test/api/1.0/track/user/?a=1"),
                         (b"/api/1.0/track/user/?a=1", b"track.test"))
        self.assertEqual(origin_form(b"HTTPS://h:8443"), (b"/", b"h:8443"))
        self.assertEqual(origin_form(b"http://[::1]:80?x=1"), (b"/?x=1", b"[::1]:80"))
        for target in (b"ftp://h/", b"h:443", b"http:///path", b"http://user@h/", b"api/1.0/"):
            with self.subTest(target=target):
                self.assertRaises(BadHead, origin_form, target)


class StrictHTTPMixin:
    """The cases, against a server on `self.port` storing into `self.dsn`."""

    port: int
    dsn: Any

    def stored(self) -> list[int]:
        return [r[0] for r in execute(self.dsn, "SELECT ProfileID FROM UserEvent ORDER BY ProfileID")]

    async def exchange(self, data: bytes) -> RawClient:
        """Send, then wait (bounded) for the server to answer and close."""
        client = await connect(self.port)
        client.send(data)
        await client.closed.addTimeout(ANSWER_WITHIN, reactor)
        return client

    async def refused(self, data: bytes, code: int) -> Any:
        case: Any = self
        client = await self.exchange(data)
        case.assertEqual(client.statuses(), [code], client.received[:300])
        case.assertEqual(self.stored(), [])
        return json_body(client.received)


class InProcessTests(StrictHTTPMixin, TestCase):
    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)
        self.port, _ = serve(self, self.dsn, request_timeout=600, max_body=MAX_BODY)

    async def test_http11_without_host_is_400(self) -> None:
        body = await self.refused(head(b"POST %s HTTP/1.1" % PATH.encode(), FORM.strip(), body=event(1)), 400)
        self.assertEqual(body, {"error": "missing Host header"})

    async def test_two_host_headers_are_400(self) -> None:
        for version in (b"HTTP/1.1", b"HTTP/1.0"):
            data = head(b"POST %s %s" % (PATH.encode(), version), b"Host: a", b"Host: b", FORM.strip(),
                        body=event(1))
            self.assertEqual(await self.refused(data, 400), {"error": "more than one Host header"})

    async def test_an_invalid_host_is_400(self) -> None:
        data = head(b"POST %s HTTP/1.1" % PATH.encode(), b"Host: a/b", FORM.strip(), body=event(1))
        self.assertEqual(await self.refused(data, 400), {"error": "invalid Host header"})

    async def test_http10_without_host_is_stored(self) -> None:
        client = await self.exchange(head(b"POST %s HTTP/1.0" % PATH.encode(), FORM.strip(), body=event(7)))
        self.assertEqual(client.statuses(), [201])
        self.assertEqual(self.stored(), [7])

    async def test_absolute_form_is_routed_and_stored(self) -> None:
        for n, target in ((1, b"http://track.test/api/1.0/track/user/"),
                          (2, b"HTTPS://track.test:443/api/1.0/track/user?Referrer=q")):
            client = await self.exchange(head(b"POST %s HTTP/1.1" % target, b"Host: other.test", FORM.strip(),
                                              body=event(n)))
            self.assertEqual(client.statuses(), [201], client.received[:300])
        self.assertEqual(self.stored(), [1, 2])
        self.assertEqual(execute(self.dsn, "SELECT Referrer FROM UserEvent WHERE ProfileID = 2"), [("q",)])

    async def test_absolute_form_batches_get_the_batch_body_limit(self) -> None:
        items = [{"type": "user", "ProfileID": n, "Region": "eu", "Referrer": "x" * 60} for n in range(100)]
        body = json.dumps({"events": items}).encode()
        self.assertGreater(len(body), MAX_BODY)  # over the single-event limit: the path was seen as a batch
        client = await self.exchange(head(b"POST http://track.test/api/1.0/track/batch/ HTTP/1.1", b"Host: t",
                                          b"Content-Type: application/json", body=body))
        self.assertEqual(client.statuses(), [201], client.received[:300])
        self.assertEqual(len(self.stored()), 100)

    async def test_absolute_form_with_another_scheme_or_userinfo_is_400(self) -> None:
        for target in (b"ftp://track.test/api/1.0/track/user/", b"http://me@track.test/api/1.0/track/user/"):
            body = await self.refused(head(b"POST %s HTTP/1.1" % target, b"Host: t", FORM.strip(),
                                           body=event(1)), 400)
            self.assertIn("request target", body["error"])

    async def test_methods_are_case_sensitive(self) -> None:
        for method, path in ((b"post", PATH.encode()), (b"Post", PATH.encode()),
                             (b"post", PATH.encode().rstrip(b"/")),  # the trailing slash is optional
                             (b"post", b"/api/1.0/track/batch")):
            data = head(b"%s %s HTTP/1.1" % (method, path), b"Host: t", FORM.strip(), body=event(1))
            body = await self.refused(data, 405)
            self.assertEqual(body, {"error": "method not allowed", "allow": "POST, OPTIONS"})
            client = await self.exchange(data)
            self.assertEqual(header(client.received, b"Allow"), b"POST, OPTIONS")
        # On a path that does not exist, it is the same 404 as any method's.
        data = head(b"post /api/1.0/track/nothing/ HTTP/1.1", b"Host: t", FORM.strip(), body=event(1))
        self.assertEqual((await self.refused(data, 404))["error"], "not found")

    async def test_bare_lf_line_endings_are_accepted(self) -> None:
        # RFC 9112 2.2: a recipient MAY take a lone LF as the line end.  Two
        # requests on one connection: the second is parsed after the first.
        one = head(b"POST %s HTTP/1.1" % PATH.encode(), b"Host: t", FORM.strip(), body=event(1), eol=b"\n")
        two = head(b"POST %s HTTP/1.1" % PATH.encode(), b"Host: t", FORM.strip(), body=event(2), eol=b"\n")
        client = await self.exchange(one.replace(b"Connection: close", b"Connection: keep-alive") + two)
        self.assertEqual(client.statuses(), [201, 201])
        self.assertEqual(self.stored(), [1, 2])

    async def test_an_oversized_chunk_size_is_413_at_once(self) -> None:
        # The size line is not even finished: its digits already say too much.
        for size_line in (b"F" * 40, b"FFFFFFFF\r\n", b"0000000000000000000000FFFFFFFF"):
            body = await self.refused(chunked() + size_line, 413)
            self.assertEqual(body, {"error": "body too large", "max_bytes": MAX_BODY})

    async def test_broken_chunk_framing_is_400_at_once(self) -> None:
        for framing in (b"15\nProfileID=1&Region=eu\n0\n\n",  # bare LF in a size line
                        b"15\r\nProfileID=1&Region=eu\n",  # bare LF after the data
                        b"15\r\nProfileID=1&Region=eu\r\n0\r\nX-Trailer: 1\n",  # bare LF in a trailer
                        b"zz",  # not a size at all
                        b"15 x"):  # junk after the size
            with self.subTest(framing=framing):
                body = await self.refused(chunked() + framing, 400)
                self.assertEqual(body, {"error": "malformed HTTP request"})

    async def test_chunked_bodies_within_the_limit_are_stored(self) -> None:
        framing = b"b\r\nProfileID=1\r\n5;ext=1\r\n&Regi\r\n5\r\non=eu\r\n0\r\nX-Trailer: 1\r\n\r\n"
        client = await self.exchange(chunked() + framing)
        self.assertEqual(client.statuses(), [201], client.received[:300])
        self.assertEqual(self.stored(), [1])


class TwistdTests(StrictHTTPMixin, TestCase):
    """The same parser in a real `twistd track`."""

    timeout = 120

    async def test_a_twistd_child_is_as_strict(self) -> None:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.dsn = sqlite_dsn(self)
        proc = TwistdTrack(["--http", "tcp:0:interface=127.0.0.1", "--dsn", dsn_text(self.dsn),
                            "--request-timeout", "600"], cwd)
        self.addCleanup(proc.stop)
        self.port = port_of(await proc.ready)
        await self.refused(head(b"POST %s HTTP/1.1" % PATH.encode(), FORM.strip(), body=event(1)), 400)
        await self.refused(head(b"post %s HTTP/1.1" % PATH.encode(), b"Host: t", FORM.strip(), body=event(1)), 405)
        await self.refused(chunked() + b"F" * 40, 413)
        client = await self.exchange(head(b"POST http://track.test%s HTTP/1.1" % PATH.encode(), b"Host: t",
                                          FORM.strip(), body=event(3), eol=b"\n"))
        self.assertEqual(client.statuses(), [201])
        self.assertEqual(self.stored(), [3])
