"""A batch's `"Anonymous": true` (what track.js sends in a sendBeacon,
which cannot set the Track-Anonymous header), in memory."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from track.fields.kinds import KINDS
from track.pipeline.batcher import Batcher
from track.test.web.test_app import URL, Database, HeaderDict, stub_treq
from track.web.app import TrackApp

BEACON: HeaderDict = {"Content-Type": "text/plain;charset=UTF-8"}  # what navigator.sendBeacon sends
EVENTS = [
    {"type": "user", "ProfileID": 1, "Region": "eu", "MessageID": "u"},
    {"type": "item", "ProfileID": 1, "Region": "eu", "ItemName": "axe", "ItemType": "w", "IsUGC": 0,
     "MessageID": "i"},
    {"type": "session", "ProfileID": 1, "Region": "eu", "SessionID": "s", "SessionType": "t",
     "RemoteIP": "198.51.100.9", "MessageID": "s"},
]


class AnonymousEnvelopeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.db = Database()
        batcher = Batcher(self.db.insert, self.clock, flush_interval=0, insert_together=self.atomic_insert)
        self.treq = stub_treq(TrackApp(batcher, self.clock).resource())

    def atomic_insert(self, work: Sequence[tuple[Any, Sequence[Any]]]) -> Any:
        for event, rows in work:
            self.db.insert(event, rows)
        return succeed([])

    def post(self, envelope: dict[str, Any], headers: HeaderDict = BEACON) -> tuple[int, Any]:
        d = self.treq.post(f"{URL}/batch/", data=json.dumps(envelope).encode(), headers=headers)
        self.treq.flush()
        self.clock.advance(0)
        self.treq.flush()
        response = self.successResultOf(d)
        return response.code, json.loads(self.successResultOf(response.content()))

    def remote_ips(self) -> dict[str, str]:
        """MessageID -> RemoteIP of every row stored."""
        found = {}
        for name in ("user", "item", "session"):
            kind = KINDS[name]
            ip, message_id = kind.columns.index("RemoteIP"), kind.message_id_index
            found.update({row[message_id]: row[ip] for row in self.db.rows.get(kind.table, [])})
        return found

    def test_anonymous_true_keeps_no_address_for_any_event_of_the_batch(self) -> None:
        code, answer = self.post({"SentAt": 1_700_000_000_000, "Anonymous": True, "events": EVENTS})
        self.assertEqual((code, answer["stored"]), (201, 3))
        self.assertEqual(self.remote_ips(), {"u": "", "i": "", "s": ""})  # the session's own field too

    def test_anonymous_false_or_absent_keeps_the_address(self) -> None:
        self.assertEqual(self.post({"Anonymous": False, "events": EVENTS[:1]})[0], 201)
        self.assertEqual(self.post({"events": [{**EVENTS[1]}]})[0], 201)
        self.assertEqual(self.remote_ips(), {"u": "127.0.0.1", "i": "127.0.0.1"})

    def test_the_header_still_wins_over_false(self) -> None:
        code, _ = self.post({"Anonymous": False, "events": EVENTS[:1]}, {**BEACON, "Track-Anonymous": "1"})
        self.assertEqual(code, 201)
        self.assertEqual(self.remote_ips(), {"u": ""})

    def test_anything_but_a_boolean_is_a_400_and_nothing_is_stored(self) -> None:
        values: tuple[object, ...] = (1, "true", None, [])
        for value in values:
            with self.subTest(value=value):
                code, answer = self.post({"Anonymous": value, "events": EVENTS})
                self.assertEqual(code, 400)
                self.assertEqual(answer["error"], '"Anonymous" must be true or false')
        self.assertEqual(self.db.rows, {})
