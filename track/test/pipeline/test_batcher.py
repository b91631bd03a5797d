"""Group commit, driven by a Clock: size and interval flushes, the pending
bound, per-row rejections, outages, and draining at shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from track.fields.kinds import KINDS
from track.pipeline.batcher import GATHER_SECONDS, Batcher
from track.types import InternalError, Overloaded, Refusal, Refused, Unavailable

SESSION, USER = KINDS["session"], KINDS["user"]


class RecordingInsert:
    """An insert function whose commits the test completes by hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any], Deferred[Any]]] = []

    def __call__(self, event: Any, rows: Sequence[Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((event.table, list(rows), d))
        return d


class BatcherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.insert = RecordingInsert()
        self.batcher = Batcher(self.insert, self.clock, batch_size=3, flush_interval=0.005, max_pending=5)

    def test_rows_wait_for_the_interval_then_go_out_together(self) -> None:
        d1 = self.batcher.submit(SESSION, ("a",))
        d2 = self.batcher.submit(SESSION, ("b",))
        self.clock.advance(0.004)
        self.assertEqual(self.insert.calls, [])
        self.clock.advance(0.001)
        self.assertEqual([(t, r) for t, r, _ in self.insert.calls], [("SessionEvent", [("a",), ("b",)])])
        self.assertNoResult(d1)
        self.insert.calls[0][2].callback(None)
        self.assertIsNone(self.successResultOf(d1))
        self.assertIsNone(self.successResultOf(d2))
        self.assertEqual(self.batcher.pending, 0)

    def test_a_full_buffer_goes_out_at_once(self) -> None:
        for name in "abc":
            self.batcher.submit(SESSION, (name,))
        self.assertEqual(len(self.insert.calls), 1)
        self.assertEqual(len(self.insert.calls[0][1]), 3)
        self.clock.advance(1)
        self.assertEqual(len(self.insert.calls), 1, "the interval timer was not cancelled")

    def test_while_writes_are_busy_rows_gather_and_go_when_one_finishes(self) -> None:
        batcher = Batcher(self.insert, self.clock, batch_size=100, flush_interval=0.005, max_in_flight=1,
                          min_batch=2)
        first = batcher.submit(SESSION, ("a",))
        self.clock.advance(0.005)
        later = [batcher.submit(SESSION, (n,)) for n in "bc"]
        self.clock.advance(1)
        self.assertEqual(len(self.insert.calls), 1, "a second write started while one was busy")
        self.insert.calls[0][2].callback(None)
        self.successResultOf(first)
        self.assertEqual([r for _, r, _ in self.insert.calls], [[("a",)], [("b",), ("c",)]])
        self.insert.calls[1][2].callback(None)
        for d in later:
            self.successResultOf(d)

    def test_after_a_commit_a_small_gathering_waits_a_moment_for_more(self) -> None:
        batcher = Batcher(self.insert, self.clock, batch_size=100, flush_interval=0, max_in_flight=1,
                          min_batch=3)
        batcher.submit(SESSION, ("a",))
        self.clock.advance(0)
        batcher.submit(SESSION, ("b",))
        self.insert.calls[0][2].callback(None)
        self.assertEqual(len(self.insert.calls), 1, "one gathered row went out alone at once")
        batcher.submit(SESSION, ("c",))
        self.clock.advance(GATHER_SECONDS)
        self.assertEqual([r for _, r, _ in self.insert.calls], [[("a",)], [("b",), ("c",)]])

    def test_a_lone_row_gathered_during_a_write_goes_out_after_the_moment(self) -> None:
        """No other row need come: the one that arrived while the write was
        busy is written GATHER_SECONDS after it commits, and answered."""
        batcher = Batcher(self.insert, self.clock, batch_size=100, flush_interval=0, max_in_flight=1,
                          min_batch=3)
        batcher.submit(SESSION, ("a",))
        self.clock.advance(0)
        lone = batcher.submit(SESSION, ("b",))
        self.insert.calls[0][2].callback(None)
        self.clock.advance(GATHER_SECONDS)
        self.assertEqual([r for _, r, _ in self.insert.calls], [[("a",)], [("b",)]])
        self.insert.calls[1][2].callback(None)
        self.successResultOf(lone)

    def test_with_two_full_batches_busy_the_next_row_waits_for_both(self) -> None:
        """A full buffer goes out even while a write is busy; the rows after
        it still wait until every write of the table is done (max_in_flight)."""
        batcher = Batcher(self.insert, self.clock, batch_size=2, flush_interval=0, max_in_flight=1,
                          min_batch=1)
        for n in "abcd":
            batcher.submit(SESSION, (n,))
        self.insert.calls[0][2].callback(None)
        batcher.submit(SESSION, ("e",))
        self.clock.advance(1)
        self.assertEqual(len(self.insert.calls), 2, "a third write started while one was busy")
        self.insert.calls[1][2].callback(None)
        self.assertEqual([r for _, r, _ in self.insert.calls], [[("a",), ("b",)], [("c",), ("d",)], [("e",)]])

    def test_after_a_commit_enough_gathered_rows_go_at_once(self) -> None:
        batcher = Batcher(self.insert, self.clock, batch_size=100, flush_interval=0, max_in_flight=1,
                          min_batch=2)
        batcher.submit(SESSION, ("a",))
        self.clock.advance(0)
        batcher.submit(SESSION, ("b",))
        batcher.submit(SESSION, ("c",))
        self.insert.calls[0][2].callback(None)
        self.assertEqual([r for _, r, _ in self.insert.calls], [[("a",)], [("b",), ("c",)]])

    def test_a_batch_request_counts_against_the_bound_and_outlives_its_client(self) -> None:
        write: Deferred[Any] = Deferred()
        answer = self.batcher.submit_together(lambda: write, 4)
        self.assertEqual(self.batcher.pending, 4)
        self.assertRaises(Overloaded, self.batcher.submit_together, lambda: succeed(None), 2)
        answer.cancel()  # the client went away
        self.failureResultOf(answer, CancelledError)
        self.assertFalse(write.called, "the write itself was cancelled")
        write.callback(None)
        self.assertEqual(self.batcher.pending, 0)

    def test_a_batch_request_counts_on_top_of_the_buffered_rows(self) -> None:
        self.batcher.submit(SESSION, ("a",))
        self.batcher.submit(SESSION, ("b",))
        self.batcher.submit_together(lambda: Deferred(), 2)
        self.assertEqual(self.batcher.pending, 4)
        self.assertRaises(Overloaded, self.batcher.submit_together, lambda: succeed(None), 2)

    def test_a_batch_request_gets_its_write_result(self) -> None:
        self.assertEqual(self.successResultOf(self.batcher.submit_together(lambda: succeed([1]), 2)), [1])
        failed = self.batcher.submit_together(lambda: fail(Unavailable("down")), 2)
        self.failureResultOf(failed, Unavailable)
        self.assertEqual(self.batcher.pending, 0)

    def test_a_batch_request_goes_through_insert_together(self) -> None:
        """The batch's groups reach the function given to the Batcher, its
        answer the request, and its events count against the bound."""
        seen: list[Any] = []
        written: Deferred[Any] = Deferred()

        def together(groups: Sequence[Any]) -> Deferred[Any]:
            seen.append(groups)
            return written

        batcher = Batcher(self.insert, self.clock, max_pending=5, insert_together=together)
        groups = [(SESSION, [("a",), ("b",)]), (USER, [("c",)])]
        answer = batcher.submit_batch(groups, 3)
        self.assertEqual(seen, [groups])
        self.assertRaises(Overloaded, batcher.submit_batch, groups, 3)
        written.callback([(1, 0, Refusal("Region", "too long"))])
        self.assertEqual(self.successResultOf(answer), [(1, 0, Refusal("Region", "too long"))])
        self.assertEqual(batcher.pending, 0)

    def test_without_insert_together_a_batch_is_an_internal_error(self) -> None:
        self.failureResultOf(self.batcher.submit_batch([(SESSION, [("a",)])], 1), InternalError)
        self.assertEqual(self.batcher.pending, 0)

    def test_each_table_has_its_own_buffer(self) -> None:
        self.batcher.submit(SESSION, ("s",))
        self.batcher.submit(USER, ("u",))
        self.clock.advance(0.005)
        self.assertEqual(sorted(t for t, _, _ in self.insert.calls), ["SessionEvent", "UserEvent"])

    def test_past_max_pending_submit_is_refused_and_memory_stays_bounded(self) -> None:
        for i in range(5):
            self.batcher.submit(USER if i % 2 else SESSION, (i,))
        self.assertRaises(Overloaded, self.batcher.submit, SESSION, ("x",))
        for _, _, d in list(self.insert.calls):
            d.callback(None)
        self.clock.advance(0.005)
        for _, _, d in self.insert.calls:
            if not d.called:
                d.callback(None)
        self.assertEqual(self.batcher.pending, 0)
        self.batcher.submit(SESSION, ("accepted again",))

    def test_a_rejected_row_fails_alone(self) -> None:
        ds = [self.batcher.submit(SESSION, (n,)) for n in "abc"]
        self.insert.calls[0][2].callback([None, Refusal("Message", "is too long"), None])
        self.successResultOf(ds[0])
        self.successResultOf(ds[2])
        failure = self.failureResultOf(ds[1], Refused)
        self.assertEqual(failure.value.refusal, Refusal("Message", "is too long"))

    def test_rows_not_stored_in_a_partial_outage_are_unavailable(self) -> None:
        ds = [self.batcher.submit(SESSION, (n,)) for n in "abc"]
        self.insert.calls[0][2].callback([None, Refusal("Region", "must not be null"), Unavailable("gone")])
        self.successResultOf(ds[0])
        self.failureResultOf(ds[1], Refused)
        self.failureResultOf(ds[2], Unavailable)

    def test_an_outage_fails_the_whole_batch_as_unavailable(self) -> None:
        ds = [self.batcher.submit(SESSION, (n,)) for n in "ab"]
        self.clock.advance(0.005)
        self.insert.calls[0][2].errback(Unavailable("connection lost"))
        for d in ds:
            self.failureResultOf(d, Unavailable)
        self.assertEqual(self.batcher.pending, 0)

    def test_a_failure_nobody_expected_is_not_relabelled_an_outage(self) -> None:
        # The store alone decides what a failure means; the batcher passes
        # it to every request as it is (the app answers 500, not 503).
        ds = [self.batcher.submit(SESSION, (n,)) for n in "ab"]
        self.clock.advance(0.005)
        self.insert.calls[0][2].errback(InternalError("ProgrammingError(1064, ...)"))
        for d in ds:
            self.failureResultOf(d, InternalError)
        self.assertEqual(self.batcher.pending, 0)

    def test_a_client_that_went_away_does_not_break_the_batch(self) -> None:
        ds = [self.batcher.submit(SESSION, (n,)) for n in "ab"]
        ds[0].cancel()
        self.failureResultOf(ds[0], CancelledError)
        self.clock.advance(0.005)
        self.insert.calls[0][2].callback(None)
        self.successResultOf(ds[1])

    def test_drain_flushes_everything_and_waits_for_commits(self) -> None:
        d = self.batcher.submit(SESSION, ("a",))
        drained = self.batcher.drain()
        self.assertEqual(len(self.insert.calls), 1, "drain did not flush the buffer")
        self.assertNoResult(drained)
        late = self.batcher.submit(SESSION, ("late",))
        self.assertEqual(len(self.insert.calls), 2, "rows after drain must go out at once")
        self.insert.calls[0][2].callback(None)
        self.assertNoResult(drained)
        self.insert.calls[1][2].callback(None)
        self.successResultOf(drained)
        self.successResultOf(d)
        self.successResultOf(late)

    def test_drain_with_nothing_pending_fires_at_once(self) -> None:
        self.successResultOf(self.batcher.drain())

    def test_synchronous_inserts_work(self) -> None:
        batcher = Batcher(lambda e, rows: succeed(None), self.clock, batch_size=1)
        self.successResultOf(batcher.submit(SESSION, ("a",)))
        failing = Batcher(lambda e, rows: fail(Unavailable("down")), self.clock, batch_size=1)
        self.failureResultOf(failing.submit(SESSION, ("a",)), Unavailable)


class BoundsAndMetricsTests(SynchronousTestCase):
    """What mutation testing found unguarded: the exact bound for batch
    requests, and what the flush metrics are told."""

    def setUp(self) -> None:
        self.insert = RecordingInsert()
        self.clock = Clock()
        self.clock.advance(100)  # not at 0, so a start time added is told from one subtracted
        self.flushed: list[tuple[int, float]] = []
        self.batcher = Batcher(self.insert, self.clock, batch_size=10, max_pending=5,
                               on_flushed=lambda rows, seconds: self.flushed.append((rows, seconds)))

    def test_a_batch_request_that_exactly_fills_the_bound_is_taken(self) -> None:
        written: Deferred[None] = Deferred()
        d = self.batcher.submit_together(lambda: written, 5)
        self.assertEqual(self.batcher.pending, 5)
        self.assertRaises(Overloaded, self.batcher.submit_together, lambda: succeed(None), 1)
        written.callback(None)
        self.successResultOf(d)
        self.assertEqual(self.batcher.pending, 0)

    def test_each_flush_reports_its_rows_and_how_long_the_write_took(self) -> None:
        for n in "ab":
            self.batcher.submit(SESSION, (n,))
        self.clock.advance(0)
        self.clock.advance(0.25)
        self.insert.calls[0][2].callback(None)
        self.assertEqual(self.flushed, [(2, 0.25)])
