"""The connection pool and the one write track does: a batch of rows per table.

Inserts run on adbapi's pool threads.  A batch is one multi-row INSERT in one
transaction (on MySQL a single autocommitted statement, on SQLite
executemany and a commit).  If the database refuses a value in it, nothing
of it is kept and its rows are inserted one by one, so the good rows are
still stored and each bad one is reported back to its own request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from track.dialects import Dialect, RowError
from track.events import EventType
from track.logs import Logger

log = Logger(namespace="track.store")

MYSQL_POOL_THREADS = 4
_ATTEMPTS = 3  # for deadlocks and lock wait timeouts, which roll back everything


@dataclass(frozen=True)
class Statement:
    """INSERT ... VALUES <row>[, <row>...] <on duplicate MessageID: nothing>."""

    prefix: str
    row: str
    suffix: str

    @property
    def one(self) -> str:
        return self.prefix + self.row + self.suffix


def _close(cursor: Any) -> None:
    try:
        cursor.close()
    except Exception:
        pass  # a cursor of a dead connection


class Unavailable(Exception):
    """The database cannot take the write now; nothing of the batch was stored."""


Row = tuple[Any, ...]
# Per row: None (stored), RowError (refused: the client's value) or
# Unavailable (not stored: try again).
Outcome = list["RowError | Unavailable | None"]


class Store:
    """Writes batches of event rows through an adbapi ConnectionPool."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        args, kwargs = dialect.pool_args()
        kwargs.setdefault("cp_min", 1)
        kwargs.setdefault("cp_max", MYSQL_POOL_THREADS)
        self.pool = ConnectionPool(*args, cp_reconnect=True, cp_noisy=False, **kwargs)
        self._statements: dict[str, Statement] = {}

    def statement(self, event: EventType) -> "Statement":
        """The INSERT for `event`'s table, built once per table."""
        stmt = self._statements.get(event.table)
        if stmt is None:
            q = self.dialect.quote
            stmt = self._statements[event.table] = Statement(
                f"INSERT INTO {q(event.table)} ({', '.join(q(c) for c in event.columns)}) VALUES ",
                "(" + ", ".join([self.dialect.placeholder] * len(event.columns)) + ")",
                self.dialect.on_duplicate(),
            )
        return stmt

    def insert(self, event: EventType, rows: Sequence[Row]) -> Deferred[Outcome | None]:
        """Commit `rows`; fires None if all were stored, else a per-row outcome.

        Fails with Unavailable when the database could not take the batch.
        """
        d = self.pool.runWithConnection(self._write, self.statement(event), rows)
        d.addErrback(self._unavailable, event)
        return d

    def _unavailable(self, failure: Failure, event: EventType) -> Failure:
        if failure.check(Unavailable):
            return failure
        reason = repr(failure.value)
        log.error("could not write {table}: {error}", table=event.table, error=reason)
        return Failure(Unavailable(reason))

    def _write(self, conn: Any, stmt: Statement, rows: Sequence[Row]) -> Outcome | None:
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
        return self._with_retries(conn, write, undo, lambda: self._write_one_by_one(conn, stmt.one, rows))

    def _with_retries(
        self, conn: Any, write: Callable[[], None], undo: Callable[[], None], refused: Callable[[], Any]
    ) -> Any:
        """`write()`, tried again on a dropped connection (reconnecting) or a
        deadlock; after a value the database refused, `refused()` names the
        refused rows instead."""
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
                    conn.reconnect()
                    continue
                undo()
                if self.dialect.row_error(e) is not None:
                    return refused()
                if attempt == _ATTEMPTS or not self.dialect.retryable(e):
                    raise
        raise AssertionError("unreachable")

    def _write_one_by_one(self, conn: Any, sql: str, rows: Sequence[Row]) -> Outcome:
        """After a refused batch: each row alone, so only the bad ones fail."""
        cursor = conn.cursor()
        try:
            return self._each_row(cursor, sql, rows)
        finally:
            _close(cursor)

    def _each_row(self, cursor: Any, sql: str, rows: Sequence[Row]) -> Outcome:
        outcome: Outcome = []
        for i, row in enumerate(rows):
            try:
                cursor.execute(sql, row)
                outcome.append(None)
            except Exception as e:
                error = self.dialect.row_error(e)
                if error is not None:
                    outcome.append(error)
                elif self.dialect.single_statement_batches:
                    # Rows before this one are already committed: report
                    # only the rest as not stored.
                    log.error("could not write: {error!r}", error=e)
                    outcome.extend([Unavailable(str(e))] * (len(rows) - i))
                    return outcome
                else:
                    raise  # the transaction rolls back: all of it failed
        return outcome

    def insert_atomic(self, groups: Sequence[tuple[EventType, Sequence[Row]]]) -> Deferred[list[tuple[int, int, RowError]] | None]:
        """Commit every group in one transaction, or nothing.

        Fires None when all are stored, else (group, row, error) for every row
        the database refused (and nothing is kept).  Fails with Unavailable.
        """
        work = [(self.statement(event), rows) for event, rows in groups]
        d = self.pool.runWithConnection(self._write_atomic, work)
        d.addErrback(self._unavailable, groups[0][0])
        return d

    def _write_atomic(self, conn: Any, groups: list[tuple[Statement, Sequence[Row]]]) -> Any:
        def write() -> None:
            self.dialect.begin(conn)
            for stmt, rows in groups:
                cursor = conn.cursor()
                try:
                    self.dialect.insert_rows(cursor, stmt, rows)
                finally:
                    cursor.close()
            self.dialect.commit(conn)

        def undo() -> None:
            try:
                self.dialect.rollback(conn)
            except Exception:
                pass  # a dead connection has nothing to roll back

        return self._with_retries(conn, write, undo, lambda: self._find_refused(conn, groups))

    def _find_refused(self, conn: Any, groups: list[tuple[Statement, Sequence[Row]]]) -> list[tuple[int, int, RowError]]:
        """Name every refused row, then roll everything back."""
        refused = []
        self.dialect.begin(conn)
        cursor = conn.cursor()
        try:
            for g, (stmt, rows) in enumerate(groups):
                for r, row in enumerate(rows):
                    try:
                        cursor.execute(stmt.one, row)
                    except Exception as e:
                        error = self.dialect.row_error(e)
                        if error is None:
                            raise
                        refused.append((g, r, error))
        finally:
            cursor.close()
            self.dialect.rollback(conn)
        return refused

    def ping(self) -> Deferred[None]:
        """Succeeds when the database answers (reconnecting a dropped connection)."""
        return self.pool.runWithConnection(self._ping)

    def _ping(self, conn: Any) -> None:
        for attempt in (1, 2):
            try:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchall()
                cursor.close()
                return
            except Exception as e:
                if attempt == 2 or not self.dialect.connection_lost(e):
                    raise
                conn.reconnect()

    def close(self) -> None:
        self.pool.close()
