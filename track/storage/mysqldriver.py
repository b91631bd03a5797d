"""pymysql as adbapi's DB-API module, with each INSERT its own transaction.

track writes a batch as one multi-row INSERT, which InnoDB commits
atomically and durably by itself in autocommit mode.  That saves the
separate COMMIT round trip, and with it a GIL hand-off on the pool thread,
per batch.  adbapi still calls commit()/rollback() after every interaction,
so here they cost nothing while autocommit is on.
"""

from __future__ import annotations

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


def connect(*args: Any, **kwargs: Any) -> Connection:
    return Connection(*args, **kwargs)
