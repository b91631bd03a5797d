"""Find and hold: the page's search and `GET /feed/events` answer over
everything the listener holds (--admin-keep of each list), not only the
rows a poll of /feed carries."""

from __future__ import annotations

import json
import time
from typing import Any

import treq
from twisted.trial.unittest import TestCase

from track.admin.query import BadQuery, Query
from track.test.admin.test_feed import FORM, serve_with_admin
from track.test.support import client_pool

JSON: dict[str | bytes, str | bytes] = {"Content-Type": "application/json"}


class QueryAPITests(TestCase):
    async def get(self, port: int, path: str, code: int = 200) -> Any:
        response = await treq.get(f"http://127.0.0.1:{port}{path}", pool=client_pool(self))
        self.assertEqual(response.code, code, path)
        return json.loads(await response.content())

    async def post(self, port: int, kind: str, body: bytes, headers: dict[str | bytes, str | bytes]) -> int:
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/{kind}/", data=body,
                                   headers=headers, pool=client_pool(self))
        await response.content()
        return int(response.code)

    async def test_my_app_sent_this_event_and_it_was_accepted(self) -> None:
        """What a team's integration test asks, as the README shows it."""
        public, admin = serve_with_admin(self)
        before = time.time()
        self.assertEqual(await self.post(public, "user", b"ProfileID=7&Region=eu&MessageID=it-1", FORM), 201)
        self.assertEqual(await self.post(public, "user", b"ProfileID=17&Region=us&MessageID=it-2", FORM), 201)
        self.assertEqual(await self.post(public, "user", b"ProfileID=x&Region=eu&MessageID=it-3", FORM), 400)
        found = await self.get(admin, "/feed/events?status=accepted&q=it-1")
        self.assertEqual([e["message_id"] for e in found["accepted"]], ["it-1"])
        self.assertEqual(found["rejected"], [])
        self.assertEqual(found["matched"], {"accepted": 1, "rejected": 0})
        exact = await self.get(admin, "/feed/events?kind=user&q=ProfileID=7")
        self.assertEqual([e["message_id"] for e in exact["accepted"]], ["it-1"])  # not 17
        rejected = await self.get(admin, "/feed/events?status=rejected&q=it-3")
        self.assertEqual([(r["status"], r["error"]["fields"]) for r in rejected["rejected"]],
                         [(400, {"ProfileID": "must be an integer"})])
        since = await self.get(admin, f"/feed/events?since={before}")
        self.assertEqual(since["matched"], {"accepted": 2, "rejected": 1})
        later = await self.get(admin, f"/feed/events?since={time.time()}")
        self.assertEqual(later["matched"], {"accepted": 0, "rejected": 0})
        self.assertEqual((await self.get(admin, "/feed/events?kind=session"))["matched"],
                         {"accepted": 0, "rejected": 0})

    async def test_search_covers_everything_held_not_only_what_a_poll_shows(self) -> None:
        public, admin = serve_with_admin(self, "--admin-keep", "200")
        events = [{"type": "user", "ProfileID": n, "Region": "eu", "MessageID": f"held-{n}"} for n in range(250)]
        self.assertEqual(await self.post(public, "batch", json.dumps({"events": events}).encode(), JSON), 201)
        feed = await self.get(admin, "/feed")
        self.assertEqual((feed["keep"], feed["held"]["accepted"], len(feed["accepted"])), (200, 200, 100))
        self.assertEqual(feed["accepted"][0]["message_id"], "held-249")
        # The 60th is held but not among the 100 newest the page was sent.
        searched = await self.get(admin, "/feed?q=held-60")
        self.assertEqual([e["message_id"] for e in searched["accepted"]], ["held-60"])
        gone = await self.get(admin, "/feed/events?q=held-49")  # older than the 200 kept
        self.assertEqual(gone["accepted"], [])
        everything = await self.get(admin, "/feed/events?status=accepted")
        self.assertEqual(len(everything["accepted"]), 200)
        self.assertEqual(len((await self.get(admin, "/feed/events?limit=3"))["accepted"]), 3)

    async def test_a_parameter_it_cannot_use_is_a_400_naming_it(self) -> None:
        _, admin = serve_with_admin(self)
        for path, word in (("/feed/events?status=maybe", "status"), ("/feed/events?since=yesterday", "since"),
                           ("/feed/events?limit=-1", "limit"), ("/feed?status=nope", "status"),
                           ("/feed?window=60", "window")):
            answer = await self.get(admin, path, 400)
            self.assertIn(word, answer["error"])
        self.assertEqual((await self.get(admin, "/feed?window=3600"))["rates"]["window"], 3600)


ENTRY: dict[str, Any] = {"time": 10.0, "kind": "user", "message_id": "m-1",
                         "fields": {"ProfileID": 42, "Region": "eu", "Referrer": None}}


class QueryTests(TestCase):

    def query(self, **args: str) -> Query:
        return Query.from_args({k.encode(): [v.encode()] for k, v in args.items()})

    def test_text_matches_any_value_but_not_a_key(self) -> None:
        self.assertTrue(self.query(q="M-1").matches(ENTRY))
        self.assertTrue(self.query(q="4").matches(ENTRY))
        self.assertFalse(self.query(q="Region").matches(ENTRY))
        self.assertTrue(self.query(q="ProfileID=42").matches(ENTRY))
        self.assertFalse(self.query(q="ProfileID=4").matches(ENTRY))
        self.assertTrue(self.query(q="MessageID=m-1").matches(ENTRY))

    def test_kind_and_since(self) -> None:
        self.assertFalse(self.query(kind="session").matches(ENTRY))
        self.assertTrue(self.query(since="9.5").matches(ENTRY))
        self.assertFalse(self.query(since="10").matches(ENTRY))
        self.assertRaises(BadQuery, self.query, since="nan")
