"""Replay's promises, on the real store (SQLite, and MariaDB when
TRACK_TEST_MYSQL_DSN is set) and a real spool on disk: an event spooled
with a 201 ends stored once or in the dead letters once, whatever the
database says of it and wherever the replay is stopped."""

from __future__ import annotations

import json
import os
import struct
import zlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from track.fields.kinds import KINDS, parse_event
from track.pipeline import replay as replay_module
from track.pipeline.replay import Replay
from track.spool import encode
from track.spool.lock import LOCK_FILE
from track.spool.records import RECORD_MARK, SEGMENT_MAGIC
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN
from track.storage.store import Store
from track.test.process import wait_until
from track.test.support import MYSQL_SKIP, create_schema, execute, open_spool, reset_mysql, sqlite_dsn
from track.types import InternalError, Unavailable

SESSION, USER = KINDS["session"], KINDS["user"]
CREATED = datetime(2026, 12, 7, 9, 0, 0)
SQLITE_NO_EVIL = ("CREATE TRIGGER no_evil BEFORE INSERT ON SessionEvent WHEN NEW.SessionType = 'evil' "
                  "BEGIN SELECT RAISE(ABORT, 'no evil sessions'); END")

if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object


def left_in(directory: str) -> list[str]:
    """What a spool directory holds besides its process lock (track/spool/lock.py)."""
    return sorted(name for name in os.listdir(directory) if name != LOCK_FILE)


def session(message_id: str, session_type: str = "login") -> Any:
    return parse_event(SESSION, {"Region": "eu", "SessionID": message_id, "RemoteIP": "203.0.113.7",
                                 "SessionType": session_type, "MessageID": message_id}, "", CREATED)


def user(message_id: str) -> Any:
    return parse_event(USER, {"ProfileID": "7", "Region": "eu", "MessageID": message_id}, "203.0.113.7", CREATED)


def replay_log(case: TestCase) -> list[tuple[LogLevel, str]]:
    """The replay's log lines (level, text) from now until the test ends."""
    logged: list[tuple[LogLevel, str]] = []

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "track.writer":
            logged.append((event["log_level"], formatEvent(event)))

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return logged


class DatabaseState:
    """The writer's side of a replay: whether the database is up."""

    def __init__(self) -> None:
        self.up = True
        self.down_because: list[str] = []

    def mark_down(self, reason: str) -> None:
        self.up = False
        self.down_because.append(reason)

    def proven(self) -> None:
        pass


class StopAfterFirstInsert:
    """The store, with the replay asked to stop (as a shutdown does) while
    its first INSERT is in flight."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.replay: Replay | None = None
        self.inserts = 0

    def insert(self, event: Any, rows: Any) -> Deferred[Any]:
        self.inserts += 1
        if self.inserts == 1 and self.replay is not None:
            self.replay.stop()
        return self.store.insert(event, rows)


class FailsOnce:
    """A store whose first insert fails as nothing expected (an InternalError)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failed = 0

    def insert(self, event: Any, rows: Any) -> Deferred[Any]:
        if not self.failed:
            self.failed += 1
            return fail(InternalError("OperationalError(1180, 'Got error 6 during COMMIT')"))
        return self.store.insert(event, rows)


class ReplayMixin(_MixinBase):
    dsn: DSN
    # A trigger that refuses sessions of type 'evil' (a refused row: a dead
    # letter), and one that fails on type 'odd' in a way no table of error
    # codes expects (an internal error: a dead letter too, never a drop).
    NO_EVIL: str
    ODD: str

    def make_dsn(self) -> DSN:
        raise NotImplementedError

    def setUp(self) -> None:
        self.dsn = self.make_dsn()
        create_schema(self.dsn)
        execute(self.dsn, self.NO_EVIL)
        execute(self.dsn, self.ODD)
        self.spool_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.spool_dir)

    def store(self) -> Store:
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        return store

    def spool_segment(self, rows: list[tuple[Any, Any]]) -> str:
        path = os.path.join(self.spool_dir, "000000000001.spool")
        with open(path, "wb") as f:
            f.write(SEGMENT_MAGIC + b"".join(encode(event, row) for event, row in rows))
        return path

    def replay(self, store: Any) -> tuple[Replay, Any]:
        """A replay of the spool directory as a (re)started service makes it."""
        spool = open_spool(self, self.spool_dir)
        return Replay(store, spool, reactor, dict(KINDS), DatabaseState()), spool

    def stored(self, table: str) -> list[str]:
        return [m for (m,) in execute(self.dsn, f"SELECT MessageID FROM {table} ORDER BY MessageID")]

    def dead_letters(self) -> list[dict[str, Any]]:
        path = os.path.join(self.spool_dir, "dead-letter", "events.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    async def test_an_unexpected_error_at_replay_is_a_dead_letter_not_a_drop(self) -> None:
        """Tried again BUG_ATTEMPTS times (a restarting database can give
        such errors), then kept as a dead letter: never dropped, and never
        stopping the replay for good."""
        self.patch(replay_module, "REPLAY_BATCH", 1)  # the counts in the log add up over chunks
        self.patch(replay_module, "PROBE_FIRST", 0.01)
        self.spool_segment([(USER, user("u-0")), (SESSION, session("odd-1", "odd")), (USER, user("u-2"))])
        replay, spool = self.replay(self.store())
        logged = replay_log(self)
        await replay.run()
        await wait_until(lambda: spool.events == 0, "the replay to end", 30)
        self.flushLoggedErrors()  # the unexpected failure is logged with its traceback
        self.assertEqual(self.stored("UserEvent"), ["u-0", "u-2"])
        self.assertEqual(self.stored("SessionEvent"), [])
        letters = self.dead_letters()
        self.assertEqual([(d["type"], d["MessageID"]) for d in letters], [("session", "odd-1")])
        self.assertTrue(letters[0]["error"].startswith("internal error: "), letters[0]["error"])
        path = os.path.join(self.spool_dir, "dead-letter", "events.jsonl")
        self.assertIn((LogLevel.error, f"1 spooled event(s) could not be stored, kept as dead letters in {path}; "
                                       f"the first: session odd-1: {letters[0]['error']}"), logged)
        tries = [text for level, text in logged if level == LogLevel.warn and "unexpected error storing" in text]
        self.assertEqual([t.split("(attempt ")[1][:6] for t in tries], ["1 of 4", "2 of 4", "3 of 4"])
        self.assertIn((LogLevel.info, "replayed 1 spooled events into the database; 1 refused by it, kept as "
                                      "dead letters"), logged)
        self.assertEqual((spool.events, left_in(self.spool_dir)), (0, ["dead-letter"]))

    async def test_an_unexpected_error_once_is_tried_again_and_stored(self) -> None:
        """A Galera node's provider in a bad state for a moment: the events
        it met are stored at the next try, none is a dead letter."""
        self.patch(replay_module, "PROBE_FIRST", 0.01)
        self.spool_segment([(USER, user("u-0")), (SESSION, session("s-1", "login"))])
        store = FailsOnce(self.store())
        replay, spool = self.replay(store)
        await replay.run()
        await wait_until(lambda: spool.events == 0, "the replay to end", 30)
        self.assertEqual((self.stored("UserEvent"), self.stored("SessionEvent")), (["u-0"], ["s-1"]))
        self.assertEqual((self.dead_letters(), store.failed), ([], 1))

    async def test_a_replay_stopped_after_its_first_chunk_resumes_and_stores_each_event_once(self) -> None:
        self.patch(replay_module, "REPLAY_BATCH", 2)
        ids = [f"p-{n}" for n in range(5)]
        self.spool_segment([(SESSION, session(m, "evil" if m == "p-1" else "login")) for m in ids])
        store = StopAfterFirstInsert(self.store())
        replay, spool = self.replay(store)
        store.replay = replay
        await replay.run()
        self.assertEqual(store.inserts, 1, "a run of one kind is one INSERT")
        self.assertEqual(self.stored("SessionEvent"), ["p-0"])
        self.assertEqual([d["MessageID"] for d in self.dead_letters()], ["p-1"])
        self.assertIn("000000000001.spool", os.listdir(self.spool_dir), "a partly replayed segment was removed")
        spool.close()

        replay, spool = self.replay(self.store())  # a restart
        self.assertEqual(spool.events, 3)
        await replay.run()
        self.assertEqual(self.stored("SessionEvent"), ["p-0", "p-2", "p-3", "p-4"])
        self.assertEqual([d["MessageID"] for d in self.dead_letters()], ["p-1"], "dead-lettered twice")
        self.assertEqual((spool.events, left_in(self.spool_dir)), (0, ["dead-letter"]))


class SQLiteReplayTests(ReplayMixin, TestCase):
    NO_EVIL = SQLITE_NO_EVIL
    # Malformed JSON: an OperationalError no table of SQLite errors expects.
    ODD = ("CREATE TRIGGER odd BEFORE INSERT ON SessionEvent WHEN NEW.SessionType = 'odd' "
           "BEGIN SELECT json('{'); END")

    def make_dsn(self) -> DSN:
        return sqlite_dsn(self)


class MySQLReplayTests(ReplayMixin, TestCase):
    skip = MYSQL_SKIP
    NO_EVIL = ("CREATE TRIGGER no_evil BEFORE INSERT ON SessionEvent FOR EACH ROW BEGIN "
               "IF NEW.SessionType = 'evil' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no evil sessions'; "
               "END IF; END")
    # Error 1242 (a subquery returns more than one row).
    ODD = ("CREATE TRIGGER odd BEFORE INSERT ON SessionEvent FOR EACH ROW BEGIN "
           "IF NEW.SessionType = 'odd' THEN SET NEW.Message = (SELECT 'a' UNION SELECT 'b'); END IF; END")

    def make_dsn(self) -> DSN:
        return reset_mysql(self)

    async def test_a_dead_letter_names_the_column_the_database_refused(self) -> None:
        execute(self.dsn, "ALTER TABLE SessionEvent MODIFY SessionType varchar(4) NOT NULL")
        self.spool_segment([(SESSION, session("long-1", "logout")), (SESSION, session("ok-2", "in")),
                            (USER, user("u-3"))])
        replay, _ = self.replay(self.store())
        logged = replay_log(self)
        await replay.run()
        self.assertEqual(self.stored("SessionEvent"), ["ok-2"])
        self.assertIn((LogLevel.info, "replayed 2 spooled events into the database; 1 refused by it, kept as "
                                      "dead letters"), logged)
        (letter,) = self.dead_letters()
        self.assertEqual((letter["MessageID"], letter["error"]), (
            "long-1", "SessionType: is too long for the database column: Data too long for column 'SessionType' "
                      "at row 1"))


class DamagedSegmentTests(TestCase):
    """Bytes of a segment that are no whole record, a damaged one in the
    middle or a tail a crash tore, are kept in the dead-letter area under
    their offset, and said so in the log; the records around them are
    replayed."""

    async def test_a_damaged_record_and_a_torn_tail_are_kept_aside_and_logged(self) -> None:
        dsn = sqlite_dsn(self)
        create_schema(dsn)
        spool_dir = os.path.abspath(self.mktemp())
        os.makedirs(spool_dir)
        records = [encode(SESSION, session(f"d-{n}")) for n in range(4)]
        damaged = bytearray(records[1])
        damaged[30] ^= 0x01
        tail = records[3][:20]
        with open(os.path.join(spool_dir, "000000000001.spool"), "wb") as f:
            f.write(SEGMENT_MAGIC + records[0] + bytes(damaged) + records[2] + tail)
        logged = replay_log(self)
        store = Store(dialect_for(dsn))
        self.addCleanup(store.close)
        spool = open_spool(self, spool_dir)
        await Replay(store, spool, reactor, dict(KINDS), DatabaseState()).run()

        self.assertEqual([m for (m,) in execute(dsn, "SELECT MessageID FROM SessionEvent ORDER BY MessageID")],
                         ["d-0", "d-2"])
        at_damaged = len(SEGMENT_MAGIC) + len(records[0])
        at_tail = at_damaged + len(damaged) + len(records[2])
        letters = os.path.join(spool_dir, "dead-letter")
        kept = {}
        for name in sorted(os.listdir(letters)):
            with open(os.path.join(letters, name), "rb") as kept_file:
                kept[name] = kept_file.read()
        self.assertEqual(kept, {f"corrupt-000000000001-{at_damaged}.bin": bytes(damaged),
                                f"corrupt-000000000001-{at_tail}.bin": tail})
        path = os.path.join(spool_dir, "000000000001.spool")
        self.assertIn((LogLevel.error, f"spool segment {path}: 1 damaged record(s) ({len(damaged)} bytes) skipped "
                                       "and kept in the dead-letter area; the records after them are replayed"),
                      logged)
        self.assertIn((LogLevel.warn, f"spool segment {path}: a torn tail of {len(tail)} bytes (an append a crash "
                                      "cut short, never acknowledged) kept in the dead-letter area"), logged)
        self.assertIn((LogLevel.info, "replayed 2 spooled events into the database; 0 refused by it, kept as "
                                      "dead letters"), logged)

    async def test_an_unreadable_record_is_a_dead_letter_and_the_rest_replayed(self) -> None:
        """A record whose checksum holds but whose content is no event of
        its kind (it lacks a required column) is kept, bytes and all."""
        dsn = sqlite_dsn(self)
        create_schema(dsn)
        spool_dir = os.path.abspath(self.mktemp())
        os.makedirs(spool_dir)
        payload = b'{"type":"session","columns":{"MessageID":"g-1"}}'
        unreadable = struct.pack(">4sII", RECORD_MARK, len(payload), zlib.crc32(payload)) + payload
        with open(os.path.join(spool_dir, "000000000001.spool"), "wb") as f:
            f.write(SEGMENT_MAGIC + encode(SESSION, session("u-0")) + unreadable
                    + encode(SESSION, session("u-2")))
        logged = replay_log(self)
        store = Store(dialect_for(dsn))
        self.addCleanup(store.close)
        spool = open_spool(self, spool_dir)
        await Replay(store, spool, reactor, dict(KINDS), DatabaseState()).run()

        self.assertEqual([m for (m,) in execute(dsn, "SELECT MessageID FROM SessionEvent ORDER BY MessageID")],
                         ["u-0", "u-2"])
        path = os.path.join(spool_dir, "dead-letter", "events.jsonl")
        with open(path, encoding="utf-8") as letters:
            (letter,) = [json.loads(line) for line in letters]
        self.assertEqual(letter["record"], payload.decode())
        self.assertTrue(letter["error"].startswith("unreadable spool record: "), letter)
        self.assertIn((LogLevel.error, f"1 spooled event(s) could not be stored, kept as dead letters in {path}; "
                                       f"the first: ? ?: {letter['error']}"), logged)
        self.assertEqual((spool.events, left_in(spool_dir)), (0, ["dead-letter"]))


class Flaky:
    """The store, but its first INSERTs fail as the test says."""

    def __init__(self, store: Store, failures: list[Any]) -> None:
        self.store = store
        self.failures = failures

    def insert(self, event: Any, rows: Any) -> Deferred[Any]:
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                return fail(failure)
            answer = failure(rows)
            return answer if isinstance(answer, Deferred) else succeed(answer)
        return self.store.insert(event, rows)


class ReplayStateTests(TestCase):
    """When replay runs, stops, waits and tries again."""

    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)
        create_schema(self.dsn)
        self.spool_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.spool_dir)
        with open(os.path.join(self.spool_dir, "000000000001.spool"), "wb") as f:
            f.write(SEGMENT_MAGIC + b"".join(encode(SESSION, session(f"s-{n}")) for n in range(3)))
        self.store = Store(dialect_for(self.dsn))
        self.addCleanup(self.store.close)
        self.spool = open_spool(self, self.spool_dir)
        self.state = DatabaseState()
        self.clock = Clock()
        self.logged = replay_log(self)

    def replay(self, failures: list[Any]) -> Replay:
        return Replay(Flaky(self.store, failures), self.spool, self.clock, dict(KINDS), self.state)

    def stored(self) -> list[str]:
        return [m for (m,) in execute(self.dsn, "SELECT MessageID FROM SessionEvent ORDER BY MessageID")]

    async def test_nothing_is_replayed_while_the_database_is_down(self) -> None:
        self.state.up = False
        await self.replay([]).run()
        self.assertEqual((self.stored(), self.spool.events), ([], 3))

    async def test_a_database_gone_midway_marks_it_down_and_keeps_the_rest(self) -> None:
        gone = Unavailable("(2013, lost connection)")
        await self.replay([lambda rows: [None] + [gone] * (len(rows) - 1)]).run()
        self.assertEqual(self.state.down_because,
                         ["the database went away during replay: (2013, lost connection)"])
        self.assertEqual((self.spool.events, self.clock.getDelayedCalls()), (3, []))  # the probe brings it back

    async def test_one_replay_at_a_time_and_stop_waits_for_it(self) -> None:
        pending: Deferred[Any] = Deferred()
        replay = self.replay([lambda rows: pending])
        first = replay.run()
        await wait_until(lambda: not self.replay_failures_left(replay), "the first INSERT", 30)
        second = replay.run()  # while the first is in progress: nothing more
        self.assertTrue(second.called)
        stopped = replay.stop()
        self.assertFalse(stopped.called, "stop() did not wait for the replay in progress")
        pending.callback(None)
        await stopped
        await first
        self.assertEqual(self.stored(), [])  # the stand-in INSERT stored nothing, and no second replay ran

    @staticmethod
    def replay_failures_left(replay: Replay) -> int:
        store: Flaky = replay.store  # type: ignore[assignment]
        return len(store.failures)

    async def test_any_other_failure_is_tried_again_with_backoff(self) -> None:
        replay = self.replay([OSError(28, "No space left on device"), OSError(28, "No space left on device")])
        await replay.run()
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 0.5)
        self.assertIn((LogLevel.warn, "spool replay stopped ([Errno 28] No space left on device); trying again "
                                      "in 0.5s"), self.logged)
        self.clock.advance(0.5)  # fails again: the next wait is twice as long
        await wait_until(lambda: bool(self.clock.getDelayedCalls()), "the second try", 30)
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 0.5 + 1.0)
        self.clock.advance(1.0)  # works
        await wait_until(lambda: self.spool.events == 0, "the spool replayed", 30)
        self.assertEqual(self.stored(), ["s-0", "s-1", "s-2"])
        self.assertEqual((self.spool.events, self.state.down_because), (0, []))
        self.assertIn((LogLevel.info, "replayed 3 spooled events into the database; 0 refused by it, kept as "
                                      "dead letters"), self.logged)
