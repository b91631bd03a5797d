"""Counts that add up: every refusal a client can get, sent a known number
of times, is found exactly that often in /metrics and on the live page
(its list and its per-kind counts), whether a route or the connection
refused it; a refused batch's events are counted under their kinds."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import TestCase

from track.test.admin.test_feed import FORM, serve_with_admin
from track.test.rawhttp import connect, request
from track.test.support import client_pool

API = "/api/1.0/track"
JSON: dict[str | bytes, str | bytes] = {"Content-Type": "application/json"}


def rejected_samples(text: str) -> dict[tuple[str, str], float]:
    return {(s.labels["type"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "track_events_rejected_total"}


def batch_samples(text: str) -> dict[str, float]:
    return {s.labels["result"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "track_batch_requests_total"}


class CountsTests(TestCase):
    timeout = 60

    async def raw(self, port: int, data: bytes, expected: int) -> None:
        client = await connect(port)
        client.send(data)
        await client.closed
        self.assertEqual(client.statuses(), [expected])

    async def get(self, port: int, path: str) -> bytes:
        response = await treq.get(f"http://127.0.0.1:{port}{path}", pool=client_pool(self))
        self.assertEqual(response.code, 200)
        body: bytes = await response.content()
        return body

    async def post(self, public: int, kind: str, body: bytes, headers: dict[str | bytes, str | bytes],
                   expected: int) -> None:
        response = await treq.post(f"http://127.0.0.1:{public}{API}/{kind}/", data=body, headers=headers,
                                   pool=client_pool(self))
        await response.content()
        self.assertEqual(response.code, expected)

    async def test_every_refusal_is_counted_once_on_the_page_and_in_metrics(self) -> None:
        public, admin = serve_with_admin(self, "--trusted-proxy", "127.0.0.1", "--rate-limit", "1",
                                         "--cors-origin", "https://app.example", "--request-timeout", "0.5")

        def client(n: int) -> dict[str | bytes, str | bytes]:  # each its own rate-limit bucket
            return {**FORM, "X-Forwarded-For": f"198.51.100.{n}"}

        for n in range(2):  # 400: an invalid field
            await self.post(public, "user", b"ProfileID=x&Region=eu", client(10 + n), 400)
        for _ in range(3):  # 413 by Content-Length, refused before the body
            await self.raw(public, request(f"{API}/user/", b"", {"Content-Length": "999999999"}), 413)
        for _ in range(2):  # 413 by stream: a chunk announced past the limit
            await self.raw(public, request(f"{API}/session/", b"20000\r\n", {"Transfer-Encoding": "chunked"}), 413)
        await self.raw(public, request(f"{API}/item/", b"ProfileID=1")[:-3], 408)  # never completes
        for _ in range(2):  # 431: one header line too long
            await self.raw(public, request(f"{API}/purchase/", b"", {"X-Big": "a" * 40000}), 431)
        item = b"ProfileID=1&Region=eu&ItemName=sword&ItemType=weapon&IsUGC=0"
        for code in (201, 201, 429, 429, 429):  # 429: one client over its burst of 2
            await self.post(public, "item", item, client(20), code)
        for n in range(4):  # 403: an origin --cors-origin does not allow
            await self.post(public, "session", b"ProfileID=1",
                            {**client(30 + n), "Origin": "https://evil.example"}, 403)

        expected = {("user", "invalid"): 2, ("user", "too_large"): 3, ("session", "too_large"): 2,
                    ("item", "timeout"): 1, ("purchase", "header_too_large"): 2,
                    ("item", "rate_limited"): 3, ("session", "forbidden_origin"): 4}
        for port in (public, admin):
            self.assertEqual(rejected_samples((await self.get(port, "/metrics")).decode()), expected)
        feed = json.loads(await self.get(admin, "/feed"))
        on_page = Counter((r["kind"], r["status"]) for r in feed["rejected"])
        self.assertEqual(on_page, {("user", 400): 2, ("user", 413): 3, ("session", 413): 2, ("item", 408): 1,
                                   ("purchase", 431): 2, ("item", 429): 3, ("session", 403): 4})
        per_kind = {k: v["rejected"] for k, v in feed["kinds"].items() if v["rejected"]}
        self.assertEqual(per_kind, {"user": 5, "session": 6, "item": 4, "purchase": 2})
        self.assertEqual(feed["reasons"], {"invalid": 2, "too_large": 5, "timeout": 1, "header_too_large": 2,
                                           "rate_limited": 3, "forbidden_origin": 4})

    async def test_a_refused_batch_counts_its_events_under_their_kinds(self) -> None:
        public, admin = serve_with_admin(self)
        good = [{"type": "user", "ProfileID": 1, "Region": "eu"},
                {"type": "session", "Region": "eu", "SessionID": "s1", "RemoteIP": "10.0.0.1", "SessionType": "web"}]
        bad = [*good, {"type": "user", "ProfileID": "x", "Region": "eu"}, {"type": "nonsense"}]
        await self.post(public, "batch", json.dumps({"events": good}).encode(), JSON, 201)
        await self.post(public, "batch", json.dumps({"events": bad}).encode(), JSON, 400)
        await self.post(public, "batch", b"{not json", JSON, 400)
        text = (await self.get(admin, "/metrics")).decode()
        # Nothing of the refused batch was stored: all four of its events are
        # rejected, each under its own type (one naming none, as "batch"); a
        # body that cannot be read counts once, as "batch".
        self.assertEqual(rejected_samples(text), {("user", "invalid"): 2, ("session", "invalid"): 1,
                                                  ("batch", "invalid"): 1, ("batch", "unreadable"): 1})
        self.assertEqual(batch_samples(text), {"accepted": 1, "invalid": 1, "unreadable": 1})
        feed: Any = json.loads(await self.get(admin, "/feed"))
        self.assertEqual({k: (v["accepted"], v["rejected"]) for k, v in feed["kinds"].items()},
                         {"user": (1, 2), "session": (1, 1), "batch": (0, 2)})
        self.assertEqual(feed["batch_requests"], {"accepted": 1, "rejected": 2})
