"""Hostile and sloppy clients against the real HTTP stack (in this process,
on a real socket): huge, compressed, corrupt, stalled and pipelined requests."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import TYPE_CHECKING, Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from track.test.mariadb import MYSQL_SKIP
from track.test.rawhttp import connect, request
from track.test.support import (
    ORIGINAL_MYSQL_DDL,
    client_pool,
    execute,
    reset_mysql,
    serve,
    sqlite_dsn,
)

PATH = "/api/1.0/track/user/"
GOOD = b"ProfileID=1&Region=eu"
MAX = 4096
# treq's type for a headers dict: a plain dict[str, str] does not match it.
HeaderDict = dict[str | bytes, str | bytes]
FORM: HeaderDict = {"Content-Type": "application/x-www-form-urlencoded"}


def body_of(raw: bytes) -> Any:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


class HostileClientTests(TestCase):
    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)
        self.port, self.site = serve(self, self.dsn, max_body=MAX, request_timeout=30)
        self.url = f"http://127.0.0.1:{self.port}{PATH}"
        self.pool = client_pool(self)

    def stored(self) -> list[tuple[Any, ...]]:
        """What UserEvent holds: (ProfileID, Region, Referrer, RemoteIP), by ProfileID."""
        return execute(self.dsn, "SELECT ProfileID, Region, Referrer, RemoteIP FROM UserEvent ORDER BY ProfileID")

    @inlineCallbacks
    def exchange(self, data: bytes) -> Any:
        client = yield connect(self.port)
        client.send(data)
        raw = yield client.closed
        return client, raw

    @inlineCallbacks
    def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(self) -> Any:
        client = yield connect(self.port)
        client.send(request(PATH, b"x" * 1000, {"Content-Length": "50000000"}))
        raw = yield client.closed  # closed by the server, not waiting for 50 MB
        self.assertEqual(client.statuses(), [413])
        self.assertEqual(body_of(raw), {"error": "body too large", "max_bytes": MAX})

    @inlineCallbacks
    def test_a_chunked_body_over_the_limit_is_413(self) -> Any:
        client = yield connect(self.port)
        head = request(PATH, b"", {"Transfer-Encoding": "chunked"})
        chunk = b"%x\r\n%s\r\n" % (1024, b"a" * 1024)
        client.send(head + chunk * 8)
        yield client.closed
        self.assertEqual(client.statuses(), [413])

    @inlineCallbacks
    def test_a_body_exactly_at_the_limit_is_accepted_and_stored(self) -> Any:
        good = b"ProfileID=4096&Region=eu&Referrer=at-the-limit"
        body = good + b"&" * (MAX - len(good))
        self.assertEqual(len(body), MAX)
        client, _ = yield self.exchange(request(PATH, body))
        self.assertEqual(client.statuses(), [201])
        self.assertEqual(self.stored(), [(4096, "eu", "at-the-limit", "127.0.0.1")])
        # One byte more is over the limit: refused, and nothing more stored.
        client, _ = yield self.exchange(request(PATH, body + b"&"))
        self.assertEqual(client.statuses(), [413])
        self.assertEqual(self.stored(), [(4096, "eu", "at-the-limit", "127.0.0.1")])

    @inlineCallbacks
    def test_gzip_and_deflate_bodies_are_stored_as_sent(self) -> Any:
        def event(n: int) -> bytes:
            return f"ProfileID={n}&Region=eu&Referrer=compressed-{n}".encode()

        cases = {
            "gzip": (gzip.compress(event(1)), 201),
            "deflate": (zlib.compress(event(2)), 201),
            "raw deflate": (zlib.compress(event(3))[2:-4], 201),
            "corrupt gzip": (gzip.compress(event(4))[:-6] + b"garbage", 400),
            "truncated gzip": (gzip.compress(event(5))[:12], 400),
        }
        for name, (data, code) in cases.items():
            encoding = "deflate" if "deflate" in name else "gzip"
            response = yield treq.post(self.url, pool=self.pool, data=data,
                                       headers={**FORM, "Content-Encoding": encoding})
            content = yield response.content()
            self.assertEqual(response.code, code, (name, content))
        # Each 201 is its inflated event, exactly; the refused bodies left nothing.
        self.assertEqual(self.stored(), [(n, "eu", f"compressed-{n}", "127.0.0.1") for n in (1, 2, 3)])

    @inlineCallbacks
    def test_a_gzip_bomb_is_413(self) -> Any:
        bomb = gzip.compress(b"&" * (MAX * 1000), 9)  # 4 MB inflated, small on the wire
        self.assertLessEqual(len(bomb), MAX)
        response = yield treq.post(self.url, pool=self.pool, data=bomb, headers={**FORM, "Content-Encoding": "gzip"})
        self.assertEqual(response.code, 413)
        self.assertEqual((yield response.json())["error"], "body too large once decompressed")
        self.assertEqual(self.stored(), [])

    @inlineCallbacks
    def test_unknown_encodings_are_415(self) -> Any:
        response = yield treq.post(self.url, pool=self.pool, data=GOOD, headers={**FORM, "Content-Encoding": "br"})
        self.assertEqual(response.code, 415)

    @inlineCallbacks
    def test_oversized_headers_are_refused_with_a_4xx(self) -> Any:
        one_long = {"X-Big": "a" * 40000}
        many = {f"X-H{i}": "b" * 1000 for i in range(40)}
        for headers, code in ((one_long, 431), (many, 400)):
            client, raw = yield self.exchange(request(PATH, GOOD, headers))
            self.assertEqual(client.statuses(), [code], raw[:100])
            self.assertIn("error", body_of(raw))

    @inlineCallbacks
    def test_a_url_that_is_not_utf8_is_a_json_400(self) -> Any:
        client, raw = yield self.exchange(request("/api/1.0/track/%ff/", GOOD))
        self.assertEqual(client.statuses(), [400])
        self.assertEqual(body_of(raw), {"error": "the URL is not valid UTF-8"})

    @inlineCallbacks
    def test_a_malformed_request_line_is_a_json_400(self) -> Any:
        client, raw = yield self.exchange(b"NONSENSE\r\n\r\n")
        self.assertEqual(client.statuses(), [400])
        self.assertEqual(body_of(raw), {"error": "malformed HTTP request"})

    @inlineCallbacks
    def test_pipelined_requests_are_answered_in_order_and_stored(self) -> Any:
        bad = b"ProfileID=x&Region=eu"
        data = (request(PATH, b"ProfileID=1&Region=eu&Referrer=first", close=False)
                + request(PATH, bad, close=False)
                + request("/nope", b"ProfileID=3&Region=eu&Referrer=nowhere", close=False)
                + request(PATH, b"ProfileID=4&Region=us&Referrer=last"))
        client, _ = yield self.exchange(data)
        self.assertEqual(client.statuses(), [201, 400, 404, 201])
        self.assertEqual(self.stored(), [(1, "eu", "first", "127.0.0.1"), (4, "us", "last", "127.0.0.1")])

    @inlineCallbacks
    def test_hundreds_of_stalled_connections_do_not_delay_a_good_request(self) -> Any:
        stalled = yield gatherResults([connect(self.port) for _ in range(300)])
        for i, client in enumerate(stalled):
            client.send(b"POST /api/1.0/track/user/ HTTP/1.1\r\nContent-Length: 100\r\n"[: 10 + i % 40])
        response = yield treq.post(self.url, pool=self.pool, data=GOOD, headers=FORM)
        self.assertEqual(response.code, 201)
        self.assertTrue(all(c.closed.called is False for c in stalled))
        for client in stalled:
            client.transport.abortConnection()
        yield gatherResults([c.closed for c in stalled])


class RequestTimeoutTests(TestCase):
    @inlineCallbacks
    def test_a_stalled_request_is_answered_408_and_closed(self) -> Any:
        port, _ = serve(self, request_timeout=0.5)
        client = yield connect(port)
        client.send(request(PATH, GOOD)[:-5])  # the body never completes
        raw = yield client.closed
        self.assertEqual(client.statuses(), [408])
        self.assertEqual(body_of(raw)["error"], "request not received in time")

    @inlineCallbacks
    def test_a_trickling_request_cannot_outlive_the_timeout(self) -> Any:
        port, _ = serve(self, request_timeout=1)
        client = yield connect(port)
        data = request(PATH, GOOD)
        sent = 0
        # One byte every 100 ms would take seconds; the deadline is per request.
        while not client.closed.called and sent < len(data) - 1:
            client.send(data[sent:sent + 1])
            sent += 1
            yield deferLater(reactor, 0.1, lambda: None)
        yield client.closed
        self.assertEqual(client.statuses(), [408])
        self.assertLess(sent, len(data) - 1)

    @inlineCallbacks
    def test_an_idle_connection_is_closed(self) -> Any:
        port, _ = serve(self, request_timeout=0.5)
        client = yield connect(port)
        raw = yield client.closed
        self.assertEqual(raw, b"")


# The mixin's methods run as TestCase methods, so mypy checks them as such;
# at run time only the concrete classes below are TestCases (trial would
# otherwise collect the mixin as a test case of its own).
if TYPE_CHECKING:
    MixinBase = TestCase
else:
    MixinBase = object


class StoredExactlyMixin(MixinBase):
    """Strings go in byte for byte, through HTTP, into the database."""

    def make_dsn(self) -> Any:
        raise NotImplementedError

    @inlineCallbacks
    def test_quotes_sql_emoji_accents_and_control_characters(self) -> Any:
        dsn = self.make_dsn()
        port, _ = serve(self, dsn=dsn)
        values = ["O'Brien \"x\" \\ `y`", "1'); DROP TABLE UserEvent;--", "\U0001f600\U0001f680 ok",
                  "\u00e9\u00e8\u00ea \u4e2d\u6587", "tab\tnew\nline\x00nul\x1f\x7f"]
        for i, message in enumerate(values):
            response = yield treq.post(f"http://127.0.0.1:{port}{PATH}", pool=client_pool(self), json={
                "ProfileID": i, "Region": "eu", "Message": message})
            self.assertEqual(response.code, 201, (yield response.content()))
        stored = execute(dsn, "SELECT Message FROM UserEvent ORDER BY ProfileID")
        self.assertEqual([m for (m,) in stored], values)


class SQLiteStoredExactlyTests(StoredExactlyMixin, TestCase):
    def make_dsn(self) -> Any:
        return sqlite_dsn(self)


class MySQLStoredExactlyTests(StoredExactlyMixin, TestCase):
    skip = MYSQL_SKIP

    def make_dsn(self) -> Any:
        return reset_mysql(self)

    @inlineCallbacks
    def test_four_byte_characters_on_the_originals_utf8_columns_are_a_400(self) -> Any:
        dsn = reset_mysql(self)
        execute(dsn, *ORIGINAL_MYSQL_DDL)
        port, _ = serve(self, dsn=dsn)
        url = f"http://127.0.0.1:{port}{PATH}"
        response = yield treq.post(url, pool=client_pool(self), data=quote_form(
            {"ProfileID": "1", "Region": "eu", "Message": "gg \U0001f600", "Referrer": "caf\u00e9"}),
            headers=FORM)
        body = yield response.json()
        self.assertEqual(response.code, 400)
        self.assertEqual(list(body["fields"]), ["Message"])
        response = yield treq.post(url, pool=client_pool(self), data=quote_form(
            {"ProfileID": "1", "Region": "eu", "Message": "caf\u00e9 \u20ac"}),
            headers=FORM)
        self.assertEqual(response.code, 201)
        self.assertEqual(execute(dsn, "SELECT Message FROM UserEvent"), [("caf\u00e9 \u20ac",)])


def quote_form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()
