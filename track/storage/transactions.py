"""What runs on a pool thread with one connection: a batch's INSERT, a
batch request's transaction, the probe, and what follows a refused row.

A batch is one multi-row INSERT in one transaction (on MySQL a single
autocommitted statement, on SQLite executemany and a commit).  If the
database refuses a row of it, nothing of it is kept; on MySQL it is split
in halves until each refused row stands alone, on SQLite its rows go one by
one in one transaction, so the good rows are still stored and each bad one
is reported back to its own request.  What a failure means (refused row,
outage, bug) is the dialect's decision (the failure table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from track.logs import Logger
from track.storage.dialect import Dialect
from track.types import BatchRefusal, InternalError, Outcome, Refusal, Row, Statement, Unavailable, Verdict

log = Logger(namespace="track.store")

_ATTEMPTS = 3  # for deadlocks and lock wait timeouts, which roll back everything
_T = TypeVar("_T")


def _halves(start: int, end: int) -> list[tuple[int, int]]:
    """The two halves of [start, end), right one first (popped last)."""
    if end - start < 2:
        return [(start, end)]
    mid = (start + end) // 2
    return [(mid, end), (start, mid)]


def _close(cursor: Any) -> None:
    try:
        cursor.close()
    except Exception:
        pass  # a cursor of a dead connection


class Transactions:
    """The pool thread's side of the Store: each method takes the
    connection adbapi hands it and runs to its end there."""

    def __init__(self, dialect: Dialect, reconnected: Callable[[], None]) -> None:
        self.dialect = dialect
        # A dropped connection was opened again (the Store counts it).
        self.reconnected = reconnected

    def write(self, conn: Any, stmt: Statement, rows: Sequence[Row]) -> Outcome | None:
        """Runs on a pool thread; adbapi commits when it returns."""
        single = self.dialect.single_statement_batches

        def write() -> None:
            cursor = conn.cursor()
            try:
                # On MySQL one statement, so one atomic transaction in autocommit.
                self.dialect.insert_rows(cursor, stmt, rows)
            finally:
                _close(cursor)

        # Without autocommit, undo what executemany did so far.
        undo = (lambda: None) if single else conn.rollback
        refused = self._split if single else self._write_one_by_one
        return self._with_retries(conn, write, undo, lambda: refused(conn, stmt, rows))

    def _with_retries(
        self, conn: Any, write: Callable[[], None], undo: Callable[[], None], refused: Callable[[], _T]
    ) -> _T | None:
        """`write()`, tried again on a dropped connection (reconnecting) or a
        deadlock; after a row the database refused, `refused()` names the
        refused rows instead.  Anything else is raised for _classified."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                write()
                return None
            except Exception as e:
                if self.dialect.connection_lost(e) and attempt < _ATTEMPTS:
                    # A pooled connection the server dropped (restart,
                    # wait_timeout, failover): open a new one and try again.
                    # Safe to repeat: a statement cut off before its OK is
                    # rolled back, and MessageIDs make repeats no-ops.
                    self.dialect.reconnect(conn)
                    self.reconnected()
                    continue
                undo()
                if self.dialect.classify(e) is Verdict.REFUSED:
                    return refused()
                if attempt == _ATTEMPTS or not self.dialect.retryable(e):
                    raise
        raise AssertionError("unreachable")

    def _split(self, conn: Any, stmt: Statement, rows: Sequence[Row]) -> Outcome:
        """After a refused multi-row INSERT (atomic: nothing of it was kept):
        halves, then their halves, each its own INSERT, until every refused
        row stands alone.  Rows in a half that commits are stored once; one
        bad row in 500 costs about 18 statements instead of 500."""
        outcome: Outcome = [None] * len(rows)
        pending = _halves(0, len(rows))  # a stack, leftmost range on top
        cursor = conn.cursor()
        try:
            while pending:
                start, end = pending.pop()
                try:
                    self.dialect.insert_rows(cursor, stmt, rows[start:end])
                except Exception as e:
                    verdict = self.dialect.classify(e)
                    if verdict is not Verdict.REFUSED:
                        # Rows before `start` are committed; the rest are not.
                        outcome[start:] = [self._not_stored(e, verdict)] * (len(rows) - start)
                        return outcome
                    if end - start == 1:
                        outcome[start] = self._refusal(e)
                    else:
                        pending += _halves(start, end)
        finally:
            _close(cursor)
        return outcome

    def _refusal(self, e: Exception) -> Refusal:
        return self.dialect.refusal(e) or Refusal("", "was refused by the database", str(e))

    def _not_stored(self, e: Exception, verdict: Verdict) -> Unavailable | InternalError:
        """Called while handling `e`: log.failure takes it, with its
        traceback, from there."""
        if verdict is Verdict.OUTAGE:
            log.warn("could not write: {error!r}", error=e)
            return Unavailable(repr(e))
        log.failure("unexpected failure writing; the requests get a 500")
        return InternalError(repr(e))

    def _write_one_by_one(self, conn: Any, stmt: Statement, rows: Sequence[Row]) -> Outcome:
        """After a refused batch, inside one transaction (SQLite): each row
        alone, so only the bad ones fail; anything else rolls all back."""
        cursor = conn.cursor()
        outcome: Outcome = []
        try:
            for row in rows:
                try:
                    cursor.execute(stmt.one, self.dialect.adapt(row))
                    outcome.append(None)
                except Exception as e:
                    if self.dialect.classify(e) is not Verdict.REFUSED:
                        conn.rollback()  # none of this batch stays: its requests hear why
                        raise
                    outcome.append(self._refusal(e))
        finally:
            _close(cursor)
        return outcome

    def write_atomic(self, conn: Any, groups: list[tuple[Statement, Sequence[Row]]]) -> list[BatchRefusal] | None:
        def write() -> None:
            self.dialect.begin(conn)
            for stmt, rows in groups:
                cursor = conn.cursor()
                try:
                    self.dialect.insert_rows(cursor, stmt, rows)
                finally:
                    _close(cursor)
            self.dialect.commit(conn)

        def undo() -> None:
            try:
                self.dialect.rollback(conn)
            except Exception:
                pass  # a dead connection has nothing to roll back

        return self._with_retries(conn, write, undo, lambda: self._find_refused(conn, groups))

    def _find_refused(self, conn: Any, groups: list[tuple[Statement, Sequence[Row]]]) -> list[BatchRefusal]:
        """Name every refused row, then roll everything back."""
        refused: list[BatchRefusal] = []
        self.dialect.begin(conn)
        cursor = conn.cursor()
        try:
            for g, (stmt, rows) in enumerate(groups):
                for r, row in enumerate(rows):
                    try:
                        cursor.execute(stmt.one, self.dialect.adapt(row))
                    except Exception as e:
                        if self.dialect.classify(e) is not Verdict.REFUSED:
                            raise
                        refused.append((g, r, self._refusal(e)))
        finally:
            _close(cursor)
            self.dialect.rollback(conn)
        return refused

    def ping(self, conn: Any) -> None:
        """Raise unless the server takes writes (a dropped connection is
        opened again once)."""
        for attempt in (1, 2):
            try:
                cursor = conn.cursor()
                try:
                    self.dialect.writable(cursor)
                finally:
                    _close(cursor)
                return
            except Exception as e:
                if attempt == 2 or not self.dialect.connection_lost(e):
                    raise
                self.dialect.reconnect(conn)
                self.reconnected()
