"""Spooled events whose kind the events file no longer serves (or whose
property it no longer declares): at replay they are dead letters with that
reason, resendable as they were sent, and the rest is stored.  On SQLite,
and MariaDB when TRACK_TEST_MYSQL_DSN is set."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.logger import LogLevel
from twisted.trial.unittest import TestCase

from track.events.files import served_kinds
from track.fields.kinds import parse_event
from track.pipeline.replay import Replay
from track.spool import encode
from track.spool.records import SEGMENT_MAGIC
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN
from track.storage.prepare import prepare_database
from track.storage.store import Store
from track.test.pipeline.test_replay import DatabaseState, left_in, replay_log
from track.test.support import MYSQL_SKIP, execute, open_spool, reset_mysql, sqlite_dsn

CREATED = datetime(2026, 12, 7, 9, 0, 0)
LEVEL_UP = {"table": "LevelUpEvent", "schema": {"type": "object", "required": ["PlayerID"], "properties": {
    "PlayerID": {"type": "integer"}, "Zone": {"type": "string", "maxLength": 64},
    "At": {"type": "string", "format": "date-time"}}}}

if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object


class GoneMixin(_MixinBase):
    dsn: DSN

    def events_file(self, kinds: dict[str, Any]) -> str:
        path: str = os.path.abspath(self.mktemp() + ".json")
        with open(path, "w") as f:
            json.dump({"kinds": kinds}, f)
        return path

    def setUp(self) -> None:
        self.spool_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.spool_dir)
        before = prepare_database(self.dsn, served_kinds(self.events_file({"level_up": LEVEL_UP})))
        assert before is not None
        self.before = before

    def spool(self, *events: tuple[str, dict[str, Any]]) -> None:
        """A sealed segment of these events, as the kinds served before wrote them."""
        with open(os.path.join(self.spool_dir, "000000000001.spool"), "wb") as f:
            f.write(SEGMENT_MAGIC)
            for name, fields in events:
                kind = self.before[name]
                f.write(encode(kind, parse_event(kind, fields, "203.0.113.7", CREATED)))

    async def replay(self, kinds: dict[str, Any]) -> list[dict[str, Any]]:
        """Replay the spool with `kinds` served; the dead letters."""
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        spool = open_spool(self, self.spool_dir)
        await Replay(store, spool, reactor, kinds, DatabaseState()).run()
        self.assertEqual((spool.events, left_in(self.spool_dir)), (0, ["dead-letter"]))
        with open(os.path.join(self.spool_dir, "dead-letter", "events.jsonl"), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    async def test_a_kind_no_longer_served_goes_to_the_dead_letters_with_that_reason(self) -> None:
        self.spool(("level_up", {"PlayerID": "7", "Zone": "north", "At": "2026-12-07T10:00:00.5+01:00",
                                 "MessageID": "l-1"}),
                   ("session", {"Region": "eu", "SessionID": "s", "RemoteIP": "203.0.113.7", "SessionType": "x",
                                "MessageID": "s-1"}))
        logged = replay_log(self)
        now = prepare_database(self.dsn, served_kinds(None))  # level_up no longer in the file
        assert now is not None
        (letter,) = await self.replay(now)

        self.assertEqual(execute(self.dsn, "SELECT MessageID FROM SessionEvent"), [("s-1",)])
        self.assertEqual(execute(self.dsn, "SELECT COUNT(*) FROM LevelUpEvent"), [(0,)])  # its table stays
        self.assertEqual({k: letter[k] for k in ("type", "MessageID", "fields", "received", "error")}, {
            "type": "level_up", "MessageID": "l-1",
            "fields": {"PlayerID": 7, "Zone": "north", "At": "2026-12-07T09:00:00.500000", "MessageID": "l-1"},
            "received": {"Created": "2026-12-07T09:00:00"},
            "error": "kind 'level_up' is no longer served"})
        self.assertIn((LogLevel.error, "1 spooled event(s) could not be stored, kept as dead letters in "
                                       f"{self.spool_dir}/dead-letter/events.jsonl; the first: level_up l-1: "
                                       "kind 'level_up' is no longer served"), logged)

    async def test_a_property_no_longer_declared_goes_to_the_dead_letters_and_the_rest_is_stored(self) -> None:
        self.spool(("level_up", {"PlayerID": "7", "Zone": "north", "MessageID": "l-1"}),
                   ("level_up", {"PlayerID": "8", "MessageID": "l-2", "At": "2026-12-07T10:00:00Z"}))
        without_zone = json.loads(json.dumps(LEVEL_UP))
        del without_zone["schema"]["properties"]["Zone"]
        now = prepare_database(self.dsn, served_kinds(self.events_file({"level_up": without_zone})))
        assert now is not None
        (letter,) = await self.replay(now)

        self.assertEqual([tuple(r) for r in execute(self.dsn, "SELECT PlayerID, Zone, MessageID FROM LevelUpEvent")],
                         [(8, None, "l-2")])
        self.assertEqual((letter["MessageID"], letter["fields"]["Zone"], letter["error"]),
                         ("l-1", "north", "kind 'level_up' no longer declares Zone"))


class SQLiteGoneTests(GoneMixin, TestCase):
    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)
        super().setUp()


class MySQLGoneTests(GoneMixin, TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        super().setUp()
