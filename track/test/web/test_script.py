"""GET /track.js: the browser tracker, with caching headers, in memory."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from track.pipeline.batcher import Batcher
from track.test.web.test_app import Database, HeaderDict, stub_treq
from track.web.app import TrackApp

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
        self.assertRegex(etag, r'^"[0-9a-f]{32}"$')

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
