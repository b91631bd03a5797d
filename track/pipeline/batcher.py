"""Group commit: rows wait in per-table buffers and go out as one INSERT.

A buffer is flushed when it holds `batch_size` rows, or when its oldest row
has waited `flush_interval` seconds and fewer than `max_in_flight` of its
batches are being written; otherwise it goes out when a write finishes: at
once if at least `min_batch` rows gathered meanwhile, else GATHER_SECONDS
later.  So under light load a row waits at most `flush_interval`, and under
heavy load batches grow by themselves to whatever arrived during the
previous commit.  The short wait for a fuller batch pays for itself: each
write costs the reactor thread roughly what parsing a few dozen requests
does (thread hand-offs under the GIL), so fewer, fuller INSERTs leave more
of it for requests.  Each submitted row gets a Deferred that
fires only when its batch has committed, so the HTTP layer can answer 201
with the row safely stored.  Everything here runs on the reactor thread;
the pool threads only ever see the list handed to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from track.fields.kinds import Kind
from track.seams import InsertTogether
from track.types import BatchRefusal, InternalError, Outcome, Overloaded, Refusal, Refused, Row

InsertFn = Callable[[Kind, Sequence[Row]], "Deferred[Outcome | None]"]

DEFAULT_BATCH_SIZE = 500
DEFAULT_FLUSH_INTERVAL = 0.0  # seconds: the next reactor turn
DEFAULT_MAX_PENDING = 10_000
DEFAULT_MAX_IN_FLIGHT = 1  # per table: the next batch goes when this one commits
DEFAULT_MIN_BATCH = 32  # rows gathered during a write that go at once when it commits
GATHER_SECONDS = 0.001  # how long fewer rows than that wait for more


def _no_batches(groups: Sequence[tuple[Kind, Sequence[Row]]]) -> Deferred[list[BatchRefusal] | None]:
    return fail(InternalError("no insert_together was given to the Batcher"))


def _answer(request: Deferred[Any], result: Any) -> None:
    """Fire a request's Deferred with a write's result (a Failure errbacks),
    unless the request was cancelled: its client went away, and what was
    written stays written."""
    if request.called:
        return
    if isinstance(result, Failure):
        request.errback(result)
    else:
        request.callback(result)


def _refuse(request: Deferred[Any], error: BaseException) -> None:
    """Fail a request's Deferred with `error` (errback wraps it in a
    Failure of its own), unless the request was cancelled."""
    if not request.called:
        request.errback(error)


@dataclass
class _Buffer:
    rows: list[Row] = field(default_factory=list)
    waiters: list[Deferred[None]] = field(default_factory=list)
    timer: IDelayedCall | None = None
    in_flight: int = 0


class Batcher:
    """Per-table buffers in front of an insert function."""

    def __init__(
        self,
        insert: InsertFn,
        clock: IReactorTime,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        min_batch: int = DEFAULT_MIN_BATCH,
        on_flushed: Callable[[int, float], None] | None = None,
        insert_together: InsertTogether = _no_batches,
    ) -> None:
        self._insert = insert
        self._insert_together = insert_together
        self._clock = clock
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.max_in_flight = max_in_flight
        self.min_batch = min_batch
        self._on_flushed = on_flushed
        self.pending = 0  # buffered plus being written
        self._buffers: dict[str, tuple[Kind, _Buffer]] = {}
        self._in_flight = 0
        self._idle: list[Deferred[None]] = []
        self._draining = False

    def submit(self, kind: Kind, row: Row) -> Deferred[None]:
        """Queue one row; the Deferred fires once it is committed.

        Raises Overloaded at once when `max_pending` rows are already waiting,
        so memory stays bounded and the client hears "retry" immediately.
        """
        if self.pending >= self.max_pending:
            raise Overloaded()
        entry = self._buffers.get(kind.table)
        if entry is None:
            entry = self._buffers[kind.table] = (kind, _Buffer())
        buf = entry[1]
        d: Deferred[None] = Deferred()
        buf.rows.append(row)
        buf.waiters.append(d)
        self.pending += 1
        if len(buf.rows) >= self.batch_size or self._draining:
            self._flush(kind, buf)
        elif buf.timer is None and buf.in_flight < self.max_in_flight:
            buf.timer = self._clock.callLater(self.flush_interval, self._flush_due, kind, buf)
        return d

    def _flush_due(self, kind: Kind, buf: _Buffer) -> None:
        """The interval is up: write now, unless the writes are busy, in which
        case the first one to finish sends these rows."""
        buf.timer = None
        if buf.in_flight < self.max_in_flight:
            self._flush(kind, buf)

    def submit_batch(self, groups: Sequence[tuple[Kind, Sequence[Row]]],
                     count: int) -> Deferred[list[BatchRefusal] | None]:
        """A batch request of `count` events, whose rows `insert_together`
        stores all together (one transaction, or one spool append); see
        submit_together."""
        return self.submit_together(lambda: self._insert_together(groups), count)

    def submit_together(self, write: Callable[[], Deferred[Any]], count: int) -> Deferred[Any]:
        """A batch request: `count` events that `write()` stores in one go,
        outside the buffers but counted against the same bound.

        Raises Overloaded at once if they do not fit.  Like submit(), the
        Deferred is the request's own: cancelling it when the client goes
        away leaves the write, already under way, to finish and count.
        """
        if self.pending + count > self.max_pending:
            raise Overloaded()
        self.pending += count
        answer: Deferred[Any] = Deferred()

        def written(result: Any) -> None:
            self.pending -= count
            _answer(answer, result)

        write().addBoth(written)
        return answer

    def _flush(self, kind: Kind, buf: _Buffer) -> None:
        if buf.timer is not None:
            if buf.timer.active():
                buf.timer.cancel()
            buf.timer = None
        if not buf.rows:
            return
        rows, waiters = buf.rows, buf.waiters
        buf.rows, buf.waiters = [], []
        self._in_flight += 1
        buf.in_flight += 1
        d = self._insert(kind, rows)
        d.addCallbacks(
            self._committed, self._failed, callbackArgs=(waiters,), errbackArgs=(waiters,)
        )
        d.addBoth(self._done, kind, buf, len(rows), self._clock.seconds())

    @staticmethod
    def _committed(outcome: Outcome | None, waiters: list[Deferred[None]]) -> None:
        for i, w in enumerate(waiters):
            error = outcome[i] if outcome is not None else None
            if error is None:
                _answer(w, None)
            elif isinstance(error, Refusal):
                _refuse(w, Refused(error))
            else:  # Unavailable or InternalError: not stored
                _refuse(w, error)

    @staticmethod
    def _failed(failure: Failure, waiters: list[Deferred[None]]) -> None:
        """The whole batch failed: each request hears why, as the store
        classified it (outage: 503; anything else: 500); nothing relabels it."""
        error = failure.value
        assert error is not None  # a Failure always holds its exception
        for w in waiters:
            _refuse(w, error)

    def _done(self, _: object, kind: Kind, buf: _Buffer, count: int, started: float) -> None:
        if self._on_flushed is not None:
            self._on_flushed(count, self._clock.seconds() - started)
        self.pending -= count
        self._in_flight -= 1
        buf.in_flight -= 1
        if buf.rows and buf.timer is None:
            # Rows arrived while the write was busy: send them now if they
            # make a worthwhile batch, else give others a moment to join.
            if len(buf.rows) >= self.min_batch or self._draining:
                self._flush(kind, buf)
            else:
                buf.timer = self._clock.callLater(GATHER_SECONDS, self._flush_due, kind, buf)
        if self._in_flight == 0:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def flush(self) -> Deferred[None]:
        """Send every buffer now; fires when nothing is being written."""
        for event, buf in list(self._buffers.values()):
            self._flush(event, buf)
        if self._in_flight == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def drain(self) -> Deferred[None]:
        """For shutdown: from now on every row is sent at once; wait for all."""
        self._draining = True
        return self.flush()
