"""The embedded SQLite default: one file, one writer, WAL with synchronous=FULL."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from track.storage.ddl import column_names, null_default
from track.storage.dsn import DSN
from track.types import Column, Refusal, Row, Statement, Verdict

_SQLITE_TYPES = {
    "varchar": "TEXT",
    "decimal": "TEXT",  # keeps the exact digits; a REAL would round
    "timestamp": "TEXT",
    "datetime": "TEXT",  # a declared date-time, as its ISO text like Created
    "int": "INTEGER",
    "bigint": "INTEGER",
    "tinyint": "INTEGER",
}


# SQLite errors that mean "not now": locked past the busy timeout, a full or
# failing disk, a read-only file.
_SQLITE_OUTAGE = (
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk I/O error",
    "attempt to write a readonly database",
    "unable to open database file",
)


class SQLiteDialect:
    name = "sqlite"
    placeholder = "?"
    driver = "sqlite3"
    single_statement_batches = False  # executemany inside adbapi's transaction

    def __init__(self, dsn: DSN) -> None:
        self.path = dsn.path

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        # WAL with synchronous=FULL: a committed event survives power loss.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")

    def hosts(self) -> list[tuple[str, int]]:
        return []  # a file, not a server

    def check_host(self, address: tuple[str, int]) -> None:
        raise NotImplementedError("SQLite has no hosts")

    def reconnect(self, conn: Any) -> None:
        conn.reconnect()

    def failover_seconds(self) -> float:
        return 0.0

    def pool_args(
        self, target: Callable[[], tuple[str, int]] | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # One writer thread: SQLite serialises writers anyway.
        return (self.driver, self.path), dict(
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_openfun=self._prepare,
        )

    def connect(self) -> Any:
        conn = sqlite3.connect(self.path)
        self._prepare(conn)
        return conn

    def refusal(self, exc: BaseException) -> Refusal | None:
        if not isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)):
            return None
        message = str(exc)
        m = re.search(r"failed: \w+\.(\w+)", message)
        return Refusal(m.group(1) if m else "", "was refused by the database", message)

    def classify(self, exc: BaseException) -> Verdict:
        if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)):
            return Verdict.REFUSED
        if isinstance(exc, sqlite3.OperationalError) and any(
            text in str(exc) for text in _SQLITE_OUTAGE
        ):
            return Verdict.OUTAGE
        return Verdict.BUG

    def waited_at_start(self, exc: BaseException) -> bool:
        """A file cannot be away for a while: only a socket's errors wait."""
        return isinstance(exc, (ConnectionError, TimeoutError))

    def writable(self, cursor: Any) -> None:
        # The file is writable if a write transaction can begin (not locked).
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute("ROLLBACK")

    def retryable(self, exc: BaseException) -> bool:
        return False

    def connection_lost(self, exc: BaseException) -> bool:
        return False

    def column_ddl(self, column: Column) -> str:
        if column.primary_key:
            return f'"{column.name}" INTEGER PRIMARY KEY AUTOINCREMENT'
        base = column.type.split("(")[0]
        return f'"{column.name}" {_SQLITE_TYPES[base]}{null_default(column)}'

    def table_options(self) -> str:
        return ""

    def quote(self, name: str) -> str:
        return f'"{name}"'

    def column_names(self, cursor: Any, table: str) -> set[str]:
        return column_names(self.quote, cursor, table)

    def table_exists(self, cursor: Any, table: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,))
        return cursor.fetchone() is not None

    def string_columns(self, cursor: Any, table: str) -> dict[str, tuple[int, bool]]:
        return {}  # SQLite does not limit text; the field tables do

    def add_message_id(self, cursor: Any, table: str) -> None:
        cursor.execute(f'ALTER TABLE "{table}" ADD COLUMN "MessageID" TEXT')
        cursor.execute(f'CREATE UNIQUE INDEX "{table}_MessageID" ON "{table}" ("MessageID")')

    def on_duplicate(self) -> str:
        return ' ON CONFLICT ("MessageID") DO NOTHING'

    def insert_rows(self, cursor: Any, stmt: Statement, rows: Sequence[Sequence[Any]]) -> None:
        cursor.executemany(stmt.one, [self.adapt(row) for row in rows])

    @staticmethod
    def adapt(row: Sequence[Any]) -> Row:
        """Values as sqlite3 takes them: money as its exact text (a REAL
        would round), times as ISO text.  Per row, not sqlite3's global
        register_adapter, which would change every sqlite3 user in the process."""
        return tuple(
            str(v) if isinstance(v, Decimal) else v.isoformat(" ") if isinstance(v, datetime) else v
            for v in row
        )

    def begin(self, conn: Any) -> None:
        pass  # sqlite3 opens a transaction before the first INSERT

    def commit(self, conn: Any) -> None:
        conn.commit()

    def rollback(self, conn: Any) -> None:
        conn.rollback()

    def lock(self, cursor: Any) -> None:
        pass

    def unlock(self, cursor: Any) -> None:
        pass
