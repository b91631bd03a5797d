"""GET /track.js: the browser tracker, with caching headers, in memory."""

from __future__ import annotations

import gzip
import re
from importlib import resources
from typing import Any, cast

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from track.pipeline.batcher import Batcher
from track.test.web.test_app import Database, HeaderDict, stub_treq
from track.web.app import TrackApp
from track.web.script import StaticScript

URL = "http://track.test/track.js"


class ScriptTests(SynchronousTestCase):
    def setUp(self) -> None:
        clock = Clock()
        self.treq = stub_treq(TrackApp(Batcher(Database().insert, clock), clock).resource())

    def get(self, headers: HeaderDict | None = None, method: str = "GET") -> tuple[Any, bytes]:
        d = self.treq.request(method, URL, headers=headers)
        self.treq.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(response.content())

    def test_the_packaged_script_with_caching_headers(self) -> None:
        response, body = self.get()
        self.assertEqual(response.code, 200)
        self.assertEqual(body, resources.files("track.web").joinpath("static", "track.js").read_bytes())
        self.assertIn(b"Track", body)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/javascript; charset=utf-8"])
        (cache,) = response.headers.getRawHeaders("cache-control")
        self.assertRegex(cache, r"max-age=[1-9][0-9]*")
        (etag,) = response.headers.getRawHeaders("etag")
        self.assertRegex(etag, r'^"[0-9a-f]{32}(-gzip)?"$')
        # Any page may load it with integrity=... crossorigin; never sniffed as another type.
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"), ["*"])
        self.assertEqual(response.headers.getRawHeaders("x-content-type-options"), ["nosniff"])

    def test_a_matching_if_none_match_is_304_without_a_body(self) -> None:
        response, _ = self.get()
        (etag,) = response.headers.getRawHeaders("etag")
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            with self.subTest(header=header):
                response, body = self.get({"If-None-Match": header})
                self.assertEqual((response.code, body), (304, b""))
                self.assertEqual(response.headers.getRawHeaders("etag"), [etag])
                self.assertTrue(response.headers.hasHeader("cache-control"))
        response, body = self.get({"If-None-Match": '"stale"'})
        self.assertEqual(response.code, 200)
        self.assertTrue(body)

    def test_head_answers_the_headers_only(self) -> None:
        response, body = self.get(method="HEAD")
        self.assertEqual((response.code, body), (200, b""))
        self.assertTrue(re.fullmatch(r"[0-9]+", response.headers.getRawHeaders("content-length")[0]))


class GzipTests(SynchronousTestCase):
    """The bytes on the wire (treq would decode them), by Accept-Encoding."""

    def render(self, accept: str | None, if_none_match: str | None = None) -> tuple[DummyRequest, bytes]:
        request = DummyRequest([b"track.js"])
        if accept is not None:
            request.requestHeaders.setRawHeaders(b"accept-encoding", [accept.encode()])
        if if_none_match is not None:
            request.requestHeaders.setRawHeaders(b"if-none-match", [if_none_match.encode()])
        body = StaticScript().render(cast(IRequest, request))
        return request, body

    def header(self, request: DummyRequest, name: bytes) -> bytes | None:
        values = request.responseHeaders.getRawHeaders(name)
        return values[0] if values else None

    def test_gzip_when_asked(self) -> None:
        plain = resources.files("track.web").joinpath("static", "track.js").read_bytes()
        for accept in ("gzip", "br, gzip;q=0.5", "deflate, *", "*;q=0, gzip", "x-gzip", "GZIP;Q=1"):
            with self.subTest(accept=accept):
                request, body = self.render(accept)
                self.assertEqual(self.header(request, b"content-encoding"), b"gzip")
                self.assertEqual(gzip.decompress(body), plain)
                self.assertLess(len(body), len(plain) / 2)
                self.assertEqual(self.header(request, b"content-length"), b"%d" % len(body))
                self.assertEqual(self.header(request, b"vary"), b"Accept-Encoding")
        for refused in (None, "identity", "gzip;q=0", "br", "gzip;q=0, *", "*;q=0", "gzip;q=zero"):
            with self.subTest(accept=refused):
                request, body = self.render(refused)
                self.assertIsNone(self.header(request, b"content-encoding"))
                self.assertEqual(body, plain)

    def test_each_representation_has_its_etag_and_both_revalidate(self) -> None:
        zipped, _ = self.render("gzip")
        plain, _ = self.render(None)
        tags = {self.header(zipped, b"etag"), self.header(plain, b"etag")}
        self.assertEqual(len(tags), 2)
        for tag in tags:
            assert tag is not None
            for accept in ("gzip", None):
                request, body = self.render(accept, tag.decode())
                self.assertEqual((request.responseCode, body), (304, b""))
                self.assertEqual(self.header(request, b"access-control-allow-origin"), b"*")
