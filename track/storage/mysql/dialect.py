"""MySQL and MariaDB through pymysql: connections, DDL, and what each error means.

What a failed write means is decided by the failure table, in
track.storage.mysql.errors (an outage: spool or 503; this row cannot be
stored: 400 for its request alone; anything else, a bug: 500).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pymysql

from track.logs import Logger
from track.storage.ddl import column_names, null_default
from track.storage.dsn import DSN
from track.storage.mysql.errors import (
    GONE,
    NAMES_COLUMN,
    REFUSALS,
    RETRYABLE,
    mysql_code,
    waited_at_start,
    while_running,
)
from track.storage.sqlliterals import values_sql
from track.types import Column, Refusal, Row, Statement, Verdict

log = Logger(namespace="track")
MIGRATION_LOCK = "track_schema_migration"

# Session settings for every MySQL connection: refuse bad data instead of
# truncating it, and read/write TIMESTAMP columns in UTC.
MYSQL_SESSION_INIT = (
    "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone='+00:00'"
)
# Start-up work (migrations, which may wait for another instance's lock)
# reads with at least this timeout.
STARTUP_READ_TIMEOUT = 120.0
_COLUMN_IN_MESSAGE = re.compile(r"column [`'\"]?(?:[^`'\".\s]+[`'\"]?\.[`'\"]?)*([^`'\".\s]+)", re.IGNORECASE)
_FOREIGN_KEY_COLUMN = re.compile(r"FOREIGN KEY \(`([^`]+)`\)")


class MySQLDialect:
    name = "mysql"
    placeholder = "%s"
    driver = "track.storage.mysql.driver"
    single_statement_batches = True  # autocommit: one INSERT is one transaction

    def __init__(self, dsn: DSN) -> None:
        self.dsn = dsn

    def _connect_kwargs(self) -> dict[str, Any]:
        d = self.dsn
        kw: dict[str, Any] = dict(
            user=d.user,
            password=d.password,
            database=d.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=d.timeouts.connect,
            read_timeout=d.timeouts.read,
            write_timeout=d.timeouts.write,
            init_command=MYSQL_SESSION_INIT,
        )
        if d.unix_socket:
            kw["unix_socket"] = d.unix_socket
        else:
            kw.update(host=d.host, port=d.port)
        return kw

    def hosts(self) -> list[tuple[str, int]]:
        """The DSN's hosts, preferred first (none for a UNIX socket)."""
        return [] if self.dsn.unix_socket else list(self.dsn.hosts)

    def pool_args(
        self, target: Callable[[], tuple[str, int]] | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The pool's connections: each checked on connect (read-only, a
        Galera node not ready or not synced: an outage), and opened to the
        host `target()` names when the DSN lists several."""
        kw = self._connect_kwargs()
        kw["on_connect"] = self.writable_on_connect
        if target is not None:
            kw["target"] = target
        return (self.driver,), kw

    def writable_on_connect(self, conn: Any) -> None:
        cursor = conn.cursor()
        try:
            self.writable(cursor)
        finally:
            cursor.close()

    def connect(self) -> Any:
        """A plain connection for start-up work (migrations), with
        transactions: to the first host of the DSN that takes writes.

        The handshake and the first probe wait at most the connect timeout
        for each answer: a server that accepts and never answers (stopped,
        behind a hung proxy, a frozen VM) is an outage, found in seconds.
        Only once it has answered may the migration read for longer."""
        kw = {**self._connect_kwargs(), "autocommit": False}
        probe = self.dsn.timeouts.connect
        kw.update(read_timeout=probe, write_timeout=probe)
        hosts: list[tuple[str, int] | None] = [*self.hosts()] or [None]
        for n, address in enumerate(hosts, 1):
            if address is not None:
                kw.update(host=address[0], port=address[1])
            try:
                conn = pymysql.connect(**kw)
                try:
                    self.writable_on_connect(conn)
                except BaseException:
                    close_quietly(conn)
                    raise
                # pymysql reads these on every call and offers no setter.
                conn._read_timeout = max(self.dsn.timeouts.read, STARTUP_READ_TIMEOUT)  # type: ignore[attr-defined]
                conn._write_timeout = self.dsn.timeouts.write  # type: ignore[attr-defined]
                return conn
            except Exception as e:
                if n == len(hosts) or not waited_at_start(e):
                    raise
        raise AssertionError("unreachable")

    def reconnect(self, conn: Any) -> None:
        """A dropped pool connection opened again, to the same host, checked."""
        conn.reopen()

    def failover_seconds(self) -> float:
        return self.dsn.timeouts.failover

    def check_host(self, address: tuple[str, int]) -> None:
        """Blocking: raise unless `address` takes writes now (a connection
        of its own, bounded by the connect timeout, closed again)."""
        kw = self._connect_kwargs()
        kw.update(host=address[0], port=address[1], read_timeout=self.dsn.timeouts.connect,
                  write_timeout=self.dsn.timeouts.connect)
        conn = pymysql.connect(**kw)
        try:
            self.writable_on_connect(conn)
        finally:
            conn.close()

    def refusal(self, exc: BaseException) -> Refusal | None:
        code = mysql_code(exc)
        if code not in REFUSALS:
            return None
        message = str(exc.args[1]) if len(exc.args) > 1 else ""
        m = None
        if code in NAMES_COLUMN:
            m = _FOREIGN_KEY_COLUMN.search(message) or _COLUMN_IN_MESSAGE.search(message)
        elif code == 1062:
            m = re.search(r"key '(?:[^'.]*\.)?([^']+)'", message)
        return Refusal(m.group(1) if m else "", REFUSALS[code], message)

    def classify(self, exc: BaseException) -> Verdict:
        return while_running(exc)

    def waited_at_start(self, exc: BaseException) -> bool:
        return waited_at_start(exc)

    def writable(self, cursor: Any) -> None:
        """Raise unless the server takes writes now: not read-only (a failover
        in progress) and, on a Galera node, ready (part of the primary
        component) and Synced (not joining, donor or desynced)."""
        cursor.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'wsrep_on')")
        variables = {name.lower(): str(value).upper() for name, value in cursor.fetchall()}
        if variables.get("read_only", "OFF") not in ("0", "OFF"):
            raise pymysql.err.OperationalError(1290, "the server is read-only (read_only=ON)")
        if variables.get("wsrep_on", "OFF") not in ("ON", "1"):
            return  # not a Galera node
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state_comment')")
        status = {name.lower(): str(value) for name, value in cursor.fetchall()}
        if status.get("wsrep_ready", "").upper() != "ON":
            raise pymysql.err.OperationalError(
                1047, "WSREP has not yet prepared node for application use (wsrep_ready=OFF: not in the "
                "primary component)")
        state = status.get("wsrep_local_state_comment", "")
        if state != "Synced":
            raise pymysql.err.OperationalError(
                1047, f"WSREP has not yet prepared node for application use (the node is {state or 'not'} "
                "synced, wsrep_local_state_comment is not Synced)")

    def retryable(self, exc: BaseException) -> bool:
        return mysql_code(exc) in RETRYABLE

    def connection_lost(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.InterfaceError) or mysql_code(exc) in GONE

    def column_ddl(self, column: Column) -> str:
        if column.primary_key:
            return f"`{column.name}` bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY"
        return f"`{column.name}` {column.type}{null_default(column)}"

    def table_options(self) -> str:
        return " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

    def quote(self, name: str) -> str:
        return f"`{name}`"

    def column_names(self, cursor: Any, table: str) -> set[str]:
        return column_names(self.quote, cursor, table)

    def table_exists(self, cursor: Any, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return cursor.fetchone() is not None

    def string_columns(self, cursor: Any, table: str) -> dict[str, tuple[int, bool]]:
        """Column -> (length in characters, bmp_only: a 3-byte utf8 column) for text columns."""
        cursor.execute(
            "SELECT COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME "
            "FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "AND CHARACTER_MAXIMUM_LENGTH IS NOT NULL",
            (table,),
        )
        return {
            name: (int(length), (charset or "").lower() in ("utf8", "utf8mb3"))
            for name, length, charset in cursor.fetchall()
        }

    def add_message_id(self, cursor: Any, table: str) -> None:
        # ASCII with binary collation: IDs are compared exactly, and the
        # index stays small even on the original's utf8 tables.
        cursor.execute(
            f"ALTER TABLE `{table}` ADD COLUMN `MessageID` varchar(64) "
            "CHARACTER SET ascii COLLATE ascii_bin NULL, "
            "ADD UNIQUE KEY `MessageID` (`MessageID`)"
        )

    def on_duplicate(self) -> str:
        # Only a repeated MessageID is ignored; data errors still fail (an
        # INSERT IGNORE would silently truncate them instead).
        return " ON DUPLICATE KEY UPDATE `MessageID` = `MessageID`"

    def insert_rows(self, cursor: Any, stmt: Statement, rows: Sequence[Sequence[Any]]) -> None:
        """All rows in one statement, its VALUES built by track (see
        sqlliterals), for the connection's real charset and the backslash
        mode the server reported in its last status flags."""
        conn = cursor.connection
        no_backslash = conn.server_status & pymysql.constants.SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        cursor.execute(stmt.prefix + values_sql(rows, conn.charset, not no_backslash) + stmt.suffix)

    @staticmethod
    def adapt(row: Sequence[Any]) -> Row:
        """pymysql takes every value a row holds as it is."""
        return tuple(row)

    def begin(self, conn: Any) -> None:
        conn.begin()

    def commit(self, conn: Any) -> None:
        conn.commit_transaction()

    def rollback(self, conn: Any) -> None:
        conn.rollback_transaction()

    lock_wait_seconds = 60  # each GET_LOCK's wait: within the migration connection's read timeout

    def lock(self, cursor: Any) -> None:
        """Two instances starting together must not migrate at the same
        time: wait for the other's migration (an ALTER TABLE of a big table
        may take minutes) as long as it runs, never past it."""
        waited = 0
        while True:
            cursor.execute(f"SELECT GET_LOCK('{MIGRATION_LOCK}', {self.lock_wait_seconds})")
            (got,) = cursor.fetchone()
            if got == 1:
                return
            if got is None:  # an error in GET_LOCK itself (killed)
                raise pymysql.err.OperationalError(1927, f"GET_LOCK('{MIGRATION_LOCK}') failed")
            waited += self.lock_wait_seconds
            log.info("waiting for another instance's schema migration (it has held the lock "
                     "'{lock}' for {s} s and more)", lock=MIGRATION_LOCK, s=waited)

    def unlock(self, cursor: Any) -> None:
        cursor.execute(f"SELECT RELEASE_LOCK('{MIGRATION_LOCK}')")
        cursor.fetchall()


def close_quietly(conn: Any) -> None:
    """Close a connection that may already be closed: pymysql closes one
    itself when a read times out, and raises on a second close()."""
    if getattr(conn, "open", True):
        conn.close()
