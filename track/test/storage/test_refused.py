"""Rows the database refuses, on the real MariaDB and the production path:
that request alone gets a 400 (or, for a failure nobody expected, a 500),
every other row is stored, and the database is never taken for down.  At
replay a refused event becomes a dead letter, which can be re-sent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from typing import Any

import treq
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS, parse_event
from track.spool import encode
from track.spool.records import SEGMENT_MAGIC
from track.test.faultcase import wait_until
from track.test.support import (
    MYSQL_SKIP,
    client_pool,
    create_schema,
    execute,
    reset_mysql,
    serve,
)

SESSION = KINDS["session"]
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
NO_EVIL = (
    "CREATE TRIGGER no_evil BEFORE INSERT ON SessionEvent FOR EACH ROW BEGIN "
    "IF NEW.SessionType = 'evil' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no evil sessions'; "
    "END IF; END"
)


def session(message_id: str, session_type: str = "login", **more: str) -> dict[str, str]:
    return {"Region": "eu", "SessionID": message_id, "RemoteIP": "203.0.113.7",
            "SessionType": session_type, "MessageID": message_id, **more}


class RefusedRowTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 120

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        create_schema(self.dsn)
        self.spool_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.spool_dir)

    def start(self) -> None:
        port, _ = serve(self, self.dsn, "--spool-dir", self.spool_dir)
        self.base = f"http://127.0.0.1:{port}"
        self.pool = client_pool(self)

    @inlineCallbacks
    def post(self, kind: str, fields: dict[str, str]) -> Any:
        response = yield treq.post(f"{self.base}/api/1.0/track/{kind}/", data=fields, pool=self.pool)
        body = yield response.content()
        return response.code, json.loads(body) if body else None

    @inlineCallbacks
    def get(self, path: str) -> Any:
        response = yield treq.get(self.base + path, pool=self.pool)
        body = yield response.content()
        return json.loads(body) if path != "/metrics" else body.decode()

    def stored(self) -> list[str]:
        return [m for (m,) in execute(self.dsn, "SELECT MessageID FROM SessionEvent ORDER BY MessageID")]

    @inlineCallbacks
    def assert_database_up_and_nothing_spooled(self) -> Any:
        health = yield self.get("/healthz")
        self.assertEqual((health["database"], health["spool"]["events"]), ("up", 0))

    @inlineCallbacks
    def test_a_trigger_signal_is_that_events_400_and_the_database_stays_up(self) -> Any:
        execute(self.dsn, NO_EVIL)
        self.start()
        answer = yield self.post("session", session("bad-1", "evil"))
        self.assertEqual(answer, (400, {"error": "refused by the database", "detail": "no evil sessions"}))
        yield self.assert_database_up_and_nothing_spooled()
        answer = yield self.post("session", session("good-1"))
        self.assertEqual(answer, (201, None))
        self.assertEqual(self.stored(), ["good-1"])

    @inlineCallbacks
    def test_one_in_15_refused_inside_the_same_inserts_the_rest_stored(self) -> Any:
        execute(self.dsn, NO_EVIL)
        self.start()
        events = [session(f"e-{n:03d}", "evil" if n % 15 == 7 else "login") for n in range(90)]
        answers = yield DeferredList([self.post("session", e) for e in events], consumeErrors=True)
        codes = [result[0] for ok, result in answers]
        self.assertEqual([n for n, code in enumerate(codes) if code == 400], list(range(7, 90, 15)))
        self.assertEqual(codes.count(201), 84)
        self.assertEqual(self.stored(), [e["MessageID"] for e in events if e["SessionType"] != "evil"])
        yield self.assert_database_up_and_nothing_spooled()
        metrics = yield self.get("/metrics")
        inserts = float(next(line.split()[1] for line in metrics.splitlines()
                             if line.startswith("track_batch_size_count")))
        self.assertLess(inserts, 90, "every event had an INSERT of its own: nothing was grouped")

    @inlineCallbacks
    def test_a_batch_with_a_refused_event_stores_nothing_and_names_its_index(self) -> Any:
        execute(self.dsn, NO_EVIL)
        self.start()
        body = {"events": [{"type": "session", **session(f"b-{n}", "evil" if n == 1 else "login")}
                           for n in range(3)]}
        response = yield treq.post(f"{self.base}/api/1.0/track/batch/", json=body, pool=self.pool)
        self.assertEqual(response.code, 400)
        self.assertEqual((yield response.json()), {
            "error": "invalid batch: nothing was stored",
            "events": [{"index": 1, "error": "refused by the database", "detail": "no evil sessions"}]})
        self.assertEqual(self.stored(), [])
        yield self.assert_database_up_and_nothing_spooled()

    @inlineCallbacks
    def test_a_column_narrowed_while_running_is_a_400_naming_the_field(self) -> Any:
        self.start()
        execute(self.dsn, "ALTER TABLE SessionEvent MODIFY SessionType varchar(4) NOT NULL")
        answer = yield self.post("session", session("long-1", "login"))
        self.assertEqual(answer, (400, {"error": "invalid event",
                                        "fields": {"SessionType": "is too long for the database column"}}))
        answer = yield self.post("session", session("short-1", "ok"))
        self.assertEqual(answer, (201, None))
        self.assertEqual(self.stored(), ["short-1"])
        yield self.assert_database_up_and_nothing_spooled()

    @inlineCallbacks
    def test_a_check_constraint_refuses_that_event_alone(self) -> Any:
        self.start()
        execute(self.dsn, "ALTER TABLE SessionEvent ADD CONSTRAINT positive CHECK (ProfileID >= 0)")
        code, body = yield self.post("session", session("neg-1", ProfileID="-1"))
        self.assertEqual((code, body["error"]), (400, "refused by the database"))
        self.assertIn("positive", body["detail"])
        answer = yield self.post("session", session("pos-1", ProfileID="1"))
        self.assertEqual(answer, (201, None))
        self.assertEqual(self.stored(), ["pos-1"])
        yield self.assert_database_up_and_nothing_spooled()

    @inlineCallbacks
    def test_an_unexpected_database_error_is_a_500_and_not_an_outage(self) -> Any:
        # A trigger that fails in a way no table of codes expects (1242).
        execute(self.dsn, "CREATE TRIGGER odd BEFORE INSERT ON SessionEvent FOR EACH ROW BEGIN "
                          "IF NEW.SessionType = 'odd' THEN SET NEW.Message = (SELECT 'a' UNION SELECT 'b'); "
                          "END IF; END")
        self.start()
        answer = yield self.post("session", session("odd-1", "odd"))
        self.assertEqual(answer, (500, {"error": "internal error"}))
        self.assertEqual(len(self.flushLoggedErrors()), 1, "one log entry, with the traceback")
        yield self.assert_database_up_and_nothing_spooled()
        answer = yield self.post("session", session("fine-1"))
        self.assertEqual(answer, (201, None))
        self.assertEqual(self.stored(), ["fine-1"])

    def spool_segment(self, records: list[bytes]) -> str:
        path = os.path.join(self.spool_dir, "000000000001.spool")
        with open(path, "wb") as f:
            f.write(SEGMENT_MAGIC + b"".join(records))
        return path

    @inlineCallbacks
    def drained(self) -> Any:
        health = yield self.get("/healthz")
        return health["database"] == "up" and health["spool"]["events"] == 0

    @inlineCallbacks
    def test_refused_at_replay_becomes_a_dead_letter_and_can_be_resent(self) -> Any:
        from datetime import datetime

        created = datetime(2026, 11, 29, 10, 30, 0)
        rows = [parse_event(SESSION, session(f"r-{n}", "evil" if n == 1 else "login"), "", created)
                for n in range(3)]
        self.spool_segment([encode(SESSION, row) for row in rows])
        execute(self.dsn, NO_EVIL)
        self.start()
        yield wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(self.stored(), ["r-0", "r-2"])
        with open(os.path.join(self.spool_dir, "dead-letter", "events.jsonl")) as f:
            (letter,) = [json.loads(line) for line in f]
        self.assertEqual({k: letter[k] for k in ("type", "MessageID", "fields", "received", "error")}, {
            "type": "session", "MessageID": "r-1", "fields": session("r-1", "evil"),
            "received": {"Created": "2026-11-29T10:30:00"}, "error": "no evil sessions"})
        health = yield self.get("/healthz")
        self.assertEqual(health["dead_letter"], {"events": 1, "corrupt_bytes": 0})
        self.assertIn("track_dead_letter_events 1.0", (yield self.get("/metrics")))
        execute(self.dsn, "DROP TRIGGER no_evil")
        done = yield deferToThread(subprocess.run, [
            sys.executable, "-m", "track.spool", "resend", self.spool_dir, self.base],
            capture_output=True, text=True, timeout=60)
        self.assertEqual((done.returncode, done.stdout.strip()),
                         (0, "re-sent 1; still refused 0; kept for later 0"), done.stderr)
        self.assertEqual(self.stored(), ["r-0", "r-1", "r-2"])

        async def none_left() -> bool:
            # Counted again on the spool's thread whenever health is asked
            # (never on the reactor thread): a later answer sees the resend.
            health = await self.get("/healthz")
            return bool(health["dead_letter"]["events"] == 0)

        yield wait_until(none_left, "/healthz to count the dead letters the resend took away")

    @inlineCallbacks
    def test_a_replay_stopped_midway_resumes_after_what_it_had_done(self) -> Any:
        # A replay that had got through the first record (here: refused and
        # dead-lettered) before a shutdown or crash noted so; the next one
        # starts after it, and does not dead-letter it twice.
        from datetime import datetime

        rows = [parse_event(SESSION, session(f"p-{n}", "evil" if n == 0 else "login"), "",
                            datetime(2026, 11, 29, 11, 0, 0)) for n in range(3)]
        path = self.spool_segment([encode(SESSION, row) for row in rows])
        with open(path[: -len(".spool")] + ".replayed", "w") as f:
            f.write("1\n")
        execute(self.dsn, NO_EVIL)
        self.start()
        yield wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(self.stored(), ["p-1", "p-2"])
        self.assertFalse(os.path.exists(os.path.join(self.spool_dir, "dead-letter", "events.jsonl")))
        left = sorted(os.listdir(self.spool_dir))
        self.assertEqual([n for n in left if not n.endswith(".json") and n != "lock"], [])  # the limits, the lock

    @inlineCallbacks
    def test_a_damaged_record_mid_segment_is_kept_aside_and_the_rest_replayed(self) -> Any:
        created = parse_event(SESSION, session("x"), "", __import__("datetime").datetime(2026, 1, 1))[-1]
        records = [encode(SESSION, parse_event(SESSION, session(f"d-{n}"), "", created)) for n in range(5)]
        path = self.spool_segment(records)
        with open(path, "r+b") as f:  # flip a byte inside the third record's payload
            at = len(SEGMENT_MAGIC) + len(records[0]) + len(records[1]) + 30
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x01]))
        self.start()
        yield wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(self.stored(), ["d-0", "d-1", "d-3", "d-4"])
        health = yield self.get("/healthz")
        self.assertEqual(health["dead_letter"], {"events": 0, "corrupt_bytes": len(records[2])})
        (kept,) = os.listdir(os.path.join(self.spool_dir, "dead-letter"))
        with open(os.path.join(self.spool_dir, "dead-letter", kept), "rb") as f:
            damaged = f.read()
        self.assertEqual(len(damaged), len(records[2]))
        self.assertIn(b'"d-2"', damaged)
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_a_spool_written_by_the_previous_release_is_replayed_exactly(self) -> Any:
        shutil.copy(os.path.join(FIXTURES, "spool-v1", "000000000001.spool"), self.spool_dir)
        self.start()
        yield wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(execute(self.dsn, "SELECT MessageID, Region, SessionID, RemoteIP, SessionType, "
                                           "Message, ProfileID FROM SessionEvent ORDER BY MessageID"), [
            ("v1-session-1", "eu", "s-1", "203.0.113.7", "login", "h\u00e9llo \U0001f600", 42),
            ("v1-session-2", "us", "s-2", "2001:db8::1", "logout", None, None)])
        self.assertEqual(execute(self.dsn, "SELECT MessageID, ProfileID, Referrer, Message, RemoteIP "
                                           "FROM UserEvent"),
                         [("v1-user-1", -7, "ads", 'it\'s "quoted"\\', "198.51.100.2")])
        self.assertEqual(execute(self.dsn, "SELECT MessageID, ItemName, IsUGC, PriceGold, PriceSilver, RemoteIP "
                                           "FROM ItemEvent ORDER BY MessageID"),
                         [("v1-item-1", "sword", 1, 100, None, "198.51.100.3"),
                          ("v1-item-2", "shield", 0, None, 5, "198.51.100.4")])
        self.assertEqual(execute(self.dsn, "SELECT MessageID, GrossAmount, NetAmount, Created FROM PurchaseEvent"),
                         [("v1-purchase-1", Decimal("123456789012345.6789"), Decimal("-0.0001"),
                           __import__("datetime").datetime(2026, 11, 28, 12, 0, 0))])
