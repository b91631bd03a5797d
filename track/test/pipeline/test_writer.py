"""The writer: each batch to the database while it takes writes, to a real
spool (on disk, in a temporary directory) while it does not; what health and
readiness report.  The database here is a stand-in whose answers the test
sets; the probe's clock is a Clock."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from track.admin.health import ProcessHealth
from track.fields.kinds import KINDS, parse_event
from track.pipeline.writer import Writer
from track.spool import Spool, encode
from track.test.support import open_spool, spooled_rows
from track.types import InternalError, Refusal, Unavailable

SESSION = KINDS["session"]
NOW = datetime(2026, 11, 29, 12, 0, 0)


def row(n: int) -> tuple[Any, ...]:
    return parse_event(SESSION, {"Region": "eu", "SessionID": f"s{n}", "RemoteIP": "10.0.0.1",
                                 "SessionType": "t", "MessageID": f"m-{n}"}, "", NOW)


class Database:
    """Answers each write with what the test put in `answers` (or stores)."""

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.written: list[Any] = []

    def _answer(self, rows: Any) -> Deferred[Any]:
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Deferred):  # a write the test answers later, or never
            return answer
        if isinstance(answer, Exception):
            return fail(answer)
        self.written.append(rows)
        return succeed(answer)

    def insert(self, event: Any, rows: Any) -> Deferred[Any]:
        return self._answer(list(rows))

    def insert_atomic(self, groups: Any) -> Deferred[Any]:
        return self._answer([r for _, rows in groups for r in rows])

    def ping(self) -> Deferred[None]:
        return fail(Unavailable("still down"))

    def hosts_health(self) -> None:
        return None  # a store with no hosts to name


class WriterTests(TestCase):
    def setUp(self) -> None:
        self.db = Database()
        self.clock = Clock()
        self.spool = self.make_spool(10**6)
        self.writer = Writer(self.db, self.spool, self.clock, dict(KINDS))
        self.addCleanup(self.writer.stop)

    def make_spool(self, max_bytes: int) -> Spool:
        spool: Spool = open_spool(self, self.mktemp(), max_bytes)
        return spool

    def test_health_while_everything_is_up(self) -> None:
        self.assertEqual(ProcessHealth(self.writer).health(), {
            "status": "ok", "database": "up",
            "spool": {"events": 0, "bytes": 0, "writable": True},
            "dead_letter": {"events": 0, "corrupt_bytes": 0}})
        self.assertTrue(self.writer.ready())

    @inlineCallbacks
    def test_an_outage_spools_the_batch_and_says_so(self) -> Any:
        self.db.answers = [Unavailable("(2003, connection refused)")]
        outcome = yield self.writer.insert(SESSION, [row(1), row(2)])
        self.assertIsNone(outcome)
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [row(1), row(2)])
        health = ProcessHealth(self.writer).health()
        self.assertEqual((health["database"], health["database_error"], health["spool"]["events"]),
                         ("down", "(2003, connection refused)", 2))
        self.assertTrue(self.writer.ready())
        # While down, later batches go straight to the spool, not to the database.
        yield self.writer.insert(SESSION, [row(3)])
        self.assertEqual(self.db.written, [])
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [row(1), row(2), row(3)])

    @inlineCallbacks
    def test_a_write_the_database_never_answers_goes_to_the_spool_after_the_outage_wait(self) -> Any:
        """A database that accepts and never answers (stopped, a hung proxy)
        holds a request for --outage-wait, not for the read timeout."""
        writer = Writer(self.db, self.spool, self.clock, dict(KINDS), outage_wait=2.0)
        hung: Deferred[Any] = Deferred()
        self.db.answers = [hung]
        d = writer.insert(SESSION, [row(1), row(2)])
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.assertTrue(writer.up)
        self.clock.advance(0.1)
        self.assertIsNone((yield d))  # acknowledged: from the spool
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [row(1), row(2)])
        health = ProcessHealth(writer).health()
        self.assertEqual((health["database"], health["database_error"]),
                         ("down", "no answer from the database within 2s"))
        hung.callback(None)  # it commits after all: the replay will find the rows there (MessageIDs)
        self.assertFalse(writer.up)
        writer.stop()

    @inlineCallbacks
    def test_a_batch_request_the_database_never_answers_is_one_spool_append_after_the_wait(self) -> Any:
        writer = Writer(self.db, self.spool, self.clock, dict(KINDS), outage_wait=0.5)
        hung: Deferred[Any] = Deferred()
        self.db.answers = [hung]
        d = writer.insert_atomic([(SESSION, [row(1)]), (SESSION, [row(2)])])
        self.clock.advance(0.5)
        self.assertIsNone((yield d))
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [row(1), row(2)])
        hung.errback(Unavailable("(2013, lost connection)"))  # a late failure: nothing more to do
        writer.stop()

    def test_without_an_outage_wait_a_write_waits_for_the_database(self) -> None:
        self.db.answers = [Deferred()]
        d = self.writer.insert(SESSION, [row(1)])
        self.clock.advance(100)
        self.assertNoResult(d)
        self.assertTrue(self.writer.up)

    @inlineCallbacks
    def test_rows_cut_off_by_an_outage_are_spooled_the_rest_keep_their_answer(self) -> Any:
        refused = Refusal("Region", "is too long")
        self.db.answers = [[None, refused, Unavailable("gone")]]
        outcome = yield self.writer.insert(SESSION, [row(1), row(2), row(3)])
        self.assertEqual(outcome, [None, refused, None])
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [row(3)])
        health = ProcessHealth(self.writer).health()
        self.assertEqual((health["database"], health["database_error"]), ("down", "gone"))

    @inlineCallbacks
    def test_a_failure_nobody_expected_is_not_an_outage(self) -> Any:
        self.db.answers = [InternalError("ProgrammingError(1064)")]
        yield self.assertFailure(self.writer.insert(SESSION, [row(1)]), InternalError)
        self.assertTrue(self.writer.up)
        self.assertEqual((self.spool.events, self.clock.getDelayedCalls()), (0, []))

    @inlineCallbacks
    def test_a_batch_request_during_an_outage_is_one_spool_append(self) -> Any:
        self.db.answers = [Unavailable("gone")]
        result = yield self.writer.insert_atomic([(SESSION, [row(1), row(2)]), (SESSION, [row(3)])])
        self.assertIsNone(result)
        segments = [n for n in os.listdir(self.spool.directory) if n.endswith(".spool")]
        self.assertEqual((len(segments), self.spool.events), (1, 3))
        result = yield self.writer.insert_atomic([(SESSION, [row(4)])])  # down: straight to the spool
        self.assertEqual((result, self.db.written), (None, []))
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [row(1), row(2), row(3), row(4)])

    @inlineCallbacks
    def test_without_room_in_the_spool_an_outage_is_unavailable_and_not_ready(self) -> Any:
        record = len(encode(SESSION, row(1)))
        self.spool = self.make_spool(10 * record)  # headroom: a tenth of it, one record
        self.writer = Writer(self.db, self.spool, self.clock, dict(KINDS))
        self.addCleanup(self.writer.stop)
        self.db.answers = [Unavailable("gone")]
        yield self.writer.insert(SESSION, [row(n) for n in range(8)])
        self.assertTrue(self.writer.ready())
        yield self.writer.insert(SESSION, [row(8)])
        self.assertFalse(self.writer.ready(), "less than the headroom left: not ready")
        failure = yield self.assertFailure(self.writer.insert(SESSION, [row(9)]), Unavailable)
        self.assertIn("the spool is full", str(failure))
        self.assertEqual(self.spool.events, 9)

    @inlineCallbacks
    def test_without_a_spool_an_outage_is_unavailable(self) -> Any:
        writer = Writer(self.db, None, self.clock, dict(KINDS))
        self.addCleanup(writer.stop)
        self.db.answers = [Unavailable("gone")]
        failure = yield self.assertFailure(writer.insert(SESSION, [row(1)]), Unavailable)
        self.assertIn("no spool", str(failure))
        self.assertFalse(writer.ready())

    def test_an_unwritable_spool_is_not_ready_while_the_database_is_down(self) -> None:
        self.writer.mark_down("gone")
        self.assertTrue(self.writer.ready())
        self.spool.error = "[Errno 28] No space left on device"
        self.assertFalse(self.writer.ready())
        self.assertEqual(ProcessHealth(self.writer).health()["spool"]["error"], "[Errno 28] No space left on device")

    def test_a_database_down_at_start_is_up_only_once_its_schema_is_fitted(self) -> None:
        """Down at start-up, the writer fits the schema (on_up) when the
        database answers again, and declares it up only once that is done:
        a replay into tables not made yet would fail every spooled event."""
        self.db.ping = lambda: succeed(None)  # type: ignore[method-assign]
        fits: list[Deferred[None]] = []

        def fit() -> Deferred[None]:
            fits.append(Deferred())
            return fits[-1]

        writer = Writer(self.db, self.spool, self.clock, dict(KINDS), database_up=False, on_up=fit)
        self.addCleanup(writer.stop)
        writer.start()
        self.clock.advance(0.5)  # the first probe: the database answers, the schema is being fitted
        self.assertEqual((len(fits), writer.up), (1, False))
        fits[0].errback(Unavailable("(1205, lock wait timeout)"))
        health = ProcessHealth(writer).health()
        self.assertEqual((health["database"], health["database_error"]), ("down", "(1205, lock wait timeout)"))
        self.clock.advance(1.0)  # the next probe (backing off): fitted this time
        self.assertEqual(len(fits), 2)
        fits[1].callback(None)
        self.assertEqual((writer.up, ProcessHealth(writer).health()["database"]), (True, "up"))

    def test_a_probe_that_answers_after_stop_schedules_no_other(self) -> None:
        """Shutdown stops the probing: a probe in flight when it begins
        leaves nothing on the clock (twistd would wait on it, or log it)."""
        ping: Deferred[None] = Deferred()
        self.db.ping = lambda: ping  # type: ignore[method-assign]
        self.writer.mark_down("gone")
        self.clock.advance(0.5)  # the probe is out
        self.writer.stop()
        ping.errback(Unavailable("still down"))
        self.assertEqual((self.writer.up, self.clock.getDelayedCalls()), (False, []))
