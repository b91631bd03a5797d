"""pymysql as adbapi's DB-API module, with each INSERT its own transaction.

track writes a batch as one multi-row INSERT, which InnoDB commits
atomically and durably by itself in autocommit mode.  That saves the
separate COMMIT round trip, and with it a GIL hand-off on the pool thread,
per batch.  adbapi still calls commit()/rollback() after every interaction,
so here they cost nothing while autocommit is on.

`connect` takes two arguments pymysql does not: `target`, which names the
host to open (for a multi-host DSN, the one in use when the pool opens a
connection), and `on_connect`, which checks the new connection before the
pool gets it (a read-only or not-synced node is refused at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymysql

# The rest of the DB-API 2.0 module surface, as pymysql has it; adbapi reads
# apilevel, threadsafety and connect (ours, below).
from pymysql import (
    BINARY,
    DATE,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    TIME,
    TIMESTAMP,
    Binary,
    DatabaseError,
    DataError,
    Date,
    DateFromTicks,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    Warning,
    apilevel,
    paramstyle,
    threadsafety,
)

__all__ = [
    "BINARY", "DATE", "DATETIME", "NUMBER", "ROWID", "STRING", "TIME", "TIMESTAMP", "Binary",
    "Connection", "DataError", "DatabaseError", "Date", "DateFromTicks", "Error", "IntegrityError",
    "InterfaceError", "InternalError", "NotSupportedError", "OperationalError", "ProgrammingError",
    "Time", "TimeFromTicks", "Timestamp", "TimestampFromTicks", "Warning", "apilevel", "connect",
    "paramstyle", "threadsafety",
]


class Connection(pymysql.connections.Connection):
    def commit(self) -> None:
        if not self.autocommit_mode:
            super().commit()

    def rollback(self) -> None:
        if not self.autocommit_mode:
            super().rollback()

    # For the few writes that span statements (a batch request across
    # tables): an explicit transaction, begun with begin().
    def commit_transaction(self) -> None:
        super().commit()

    def rollback_transaction(self) -> None:
        super().rollback()

    # Set by connect(): the check each new connection passes before use.
    on_connect: Callable[[Connection], None] | None = None

    def close(self) -> None:
        """Close; nothing to do when already closed (a dropped connection
        replaced by the pool), where pymysql would raise."""
        if self.open:
            super().close()
        else:
            self._closed = True  # pymysql raises on a second close()

    def reopen(self, host: str | None = None, port: int | None = None) -> None:
        """A new connection in place of this one (to `host`:`port` when
        given), checked like the first."""
        if self.open:
            try:
                self._force_close()  # type: ignore[attr-defined]  # pymysql: drop the socket, no COM_QUIT
            except Exception:
                pass
        if host is not None and port is not None:
            self.host, self.port = host, port
        self.connect()
        if self.on_connect is not None:
            try:
                self.on_connect(self)
            except BaseException:
                self._force_close()  # type: ignore[attr-defined]  # pymysql: drop the socket, no COM_QUIT
                raise


def connect(
    *args: Any,
    target: Callable[[], tuple[str, int]] | None = None,
    on_connect: Callable[[Connection], None] | None = None,
    **kwargs: Any,
) -> Connection:
    """pymysql's connect, checked by `on_connect`.  With a `target` (a
    multi-host DSN) a failure to open is left for the work that uses the
    connection to meet (track.storage.store reopens it to that work's host,
    and so names the right host in its error), not raised here."""
    if target is None:
        conn = Connection(*args, **kwargs)
        conn.on_connect = on_connect
        if on_connect is not None:
            try:
                on_connect(conn)
            except BaseException:
                conn.close()
                raise
        return conn
    kwargs["host"], kwargs["port"] = target()
    conn = Connection(*args, defer_connect=True, **kwargs)
    conn.on_connect = on_connect
    try:
        conn.reopen()
    except Exception:
        pass  # still closed: reopened by its first use
    return conn
