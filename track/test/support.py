"""Shared test helpers: the databases tests run against, and the original schema."""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any

from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from track.storage.dialect import dialect_for
from track.storage.dsn import DSN, parse_dsn
from track.storage.schema import VERSION_TABLE, migrate

MYSQL_DSN_TEXT = os.environ.get("TRACK_TEST_MYSQL_DSN", "")
# .ci/run greps for this marker: CI must never skip a MySQL test.
MYSQL_SKIP = None if MYSQL_DSN_TEXT else "MYSQL-SKIPPED REQUIRED-SKIPPED: TRACK_TEST_MYSQL_DSN is not set"
TABLES = ("SessionEvent", "UserEvent", "ItemEvent", "PurchaseEvent")

# The original service's final schema, verbatim in spirit: utf8 (3-byte),
# int unsigned keys, RemoteIP without a default on UserEvent and ItemEvent.
ORIGINAL_MYSQL_DDL = (
    """CREATE TABLE SessionEvent (
      EventID int unsigned NOT NULL AUTO_INCREMENT,
      Region varchar(16) NOT NULL,
      SessionID varchar(32) NOT NULL,
      ProfileID int DEFAULT NULL,
      RemoteIP varchar(45) NOT NULL,
      SessionType varchar(32) NOT NULL,
      Message varchar(45) DEFAULT NULL,
      Created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
      Language varchar(16) DEFAULT NULL,
      PRIMARY KEY (EventID)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci""",
    """CREATE TABLE UserEvent (
      EventID int unsigned NOT NULL AUTO_INCREMENT,
      Region varchar(16) NOT NULL,
      ProfileID int NOT NULL,
      Referrer varchar(64) DEFAULT NULL,
      Message varchar(45) DEFAULT NULL,
      Created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
      Language varchar(16) DEFAULT NULL,
      RemoteIP varchar(45) NOT NULL,
      PRIMARY KEY (EventID)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci""",
    """CREATE TABLE ItemEvent (
      EventID int unsigned NOT NULL AUTO_INCREMENT,
      Region varchar(16) NOT NULL,
      ProfileID int NOT NULL,
      ItemName varchar(64) NOT NULL,
      ItemType varchar(45) NOT NULL,
      IsUGC tinyint(1) NOT NULL,
      IsRented tinyint(1) NOT NULL DEFAULT 0,
      PriceGold int DEFAULT NULL,
      PriceSilver int DEFAULT NULL,
      Created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
      Language varchar(16) DEFAULT NULL,
      RemoteIP varchar(45) NOT NULL,
      PRIMARY KEY (EventID)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci""",
    """CREATE TABLE PurchaseEvent (
      EventID int unsigned NOT NULL AUTO_INCREMENT,
      Region varchar(16) NOT NULL,
      ProfileID int NOT NULL,
      Currency varchar(3) NOT NULL,
      GrossAmount decimal(19,4) NOT NULL,
      NetAmount decimal(19,4) NOT NULL,
      PaymentProvider varchar(45) NOT NULL,
      Product varchar(45) NOT NULL,
      Created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
      Language varchar(16) DEFAULT NULL,
      PRIMARY KEY (EventID)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci""",
)


# Each test that uses MySQL gets a database of its own on the server
# TRACK_TEST_MYSQL_DSN names, so tests may run side by side (`trial -j2`,
# mutmut's forked runs) without dropping each other's tables.  The name
# starts with the configured database's (so a CI run's leftovers are easy to
# find and drop) and carries the process id and a counter (unique across
# trial's workers and mutmut's forks).
_OWN_DATABASE = "_track_test_database"
_MAX_NAME = 64  # MySQL's limit on a database name
_counter = itertools.count(1)


def server_dsn() -> DSN:
    """The DSN TRACK_TEST_MYSQL_DSN names, as given: the server the tests use
    (its database is only where the per-test databases are named from)."""
    return parse_dsn(MYSQL_DSN_TEXT)


def mysql_dsn(case: TestCase) -> DSN:
    """This test's own MySQL database, created empty on first use and dropped
    when the test ends (after everything the test started has stopped:
    cleanups run last-registered first)."""
    own: DSN | None = getattr(case, _OWN_DATABASE, None)
    if own is not None:
        return own
    server = server_dsn()
    suffix = f"_t{os.getpid()}_{next(_counter)}"
    name = server.database[: _MAX_NAME - len(suffix)] + suffix
    execute(server, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    own = dataclasses.replace(server, database=name)
    setattr(case, _OWN_DATABASE, own)
    case.addCleanup(drop_database, server, name)
    return own


def mysql_dsn_text(case: TestCase) -> str:
    """This test's own database as --dsn takes it (for a twistd child)."""
    return dsn_text(mysql_dsn(case))


def drop_database(server: DSN, name: str) -> None:
    """Drop a test's database; first end any connection still using it (a
    child that did not stop, a pool left open), which would otherwise hold a
    metadata lock and make DROP DATABASE wait for good."""
    conn = dialect_for(server).connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                       (name,))
        for (thread_id,) in cursor.fetchall():
            try:
                cursor.execute(f"KILL {int(thread_id)}")
            except Exception:  # it ended on its own meanwhile
                pass
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.commit()
    finally:
        conn.close()


def sqlite_dsn(case: TestCase) -> DSN:
    return parse_dsn("sqlite://" + os.path.abspath(case.mktemp() + ".sqlite3"))


def execute(dsn: DSN, *statements: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run statements on a fresh connection; return the last one's rows."""
    conn = dialect_for(dsn).connect()
    try:
        cursor = conn.cursor()
        rows: list[tuple[Any, ...]] = []
        for sql in statements:
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
            rows = list(cursor.fetchall()) if cursor.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def reset_mysql(case: TestCase) -> DSN:
    """This test's own database, empty: no event tables, no version table."""
    dsn = mysql_dsn(case)
    execute(dsn, *(f"DROP TABLE IF EXISTS `{t}`" for t in (*TABLES, VERSION_TABLE)))
    return dsn


def create_schema(dsn: DSN) -> None:
    conn = dialect_for(dsn).connect()
    try:
        migrate(conn, dialect_for(dsn))
    finally:
        conn.close()


def dsn_text(dsn: DSN) -> str:
    """A DSN as --dsn takes it."""
    if dsn.kind == "sqlite":
        return "sqlite://" + os.path.abspath(dsn.path)
    from urllib.parse import quote

    auth = quote(dsn.user, safe="") + (":" + quote(dsn.password, safe="") if dsn.password else "")
    if dsn.unix_socket:
        return f"mysql://{auth}@localhost/{dsn.database}?unix_socket={quote(dsn.unix_socket)}"
    hosts = ",".join(f"{host}:{port}" for host, port in dsn.hosts) or f"{dsn.host}:{dsn.port}"
    return f"mysql://{auth}@{hosts}/{dsn.database}"


def serve(case: TestCase, dsn: DSN | None = None, *args: str, **kwargs: Any) -> Any:
    """Run the whole service in this process, wired exactly as `twistd
    track` wires it (writer, spool and outage handling included), on
    127.0.0.1:<a free port>, storing into `dsn` (a temporary SQLite file by
    default), with its spool in a temporary directory.

    `args` are more command-line options (e.g. "--spool-dir="); keyword
    arguments are the same options spelled as Python names (max_body=10 for
    --max-body 10; request_timeout, max_batch, max_batch_body, ...).
    Returns (port, site); the service is stopped as twistd stops it when
    the test ends."""
    from twisted.internet import reactor

    from track.events.files import served_kinds
    from track.run.build import build_service
    from track.run.config import Standalone
    from track.run.options import Options
    from track.storage.prepare import prepare_database

    dsn = dsn or sqlite_dsn(case)
    argv = ["--http", "tcp:0:interface=127.0.0.1", "--dsn", dsn_text(dsn),
            "--spool-dir", os.path.abspath(case.mktemp())]
    for name, value in kwargs.items():
        for one in value if isinstance(value, (list, tuple)) else [value]:
            argv += [f"--{name.replace('_', '-')}", str(one)]
    options = Options()
    options.parseOptions([*argv, *args])
    served = served_kinds(options.config.events)
    service = build_service(options.config, Standalone(), reactor, prepare_database(dsn, served))
    service.privilegedStartService()
    service.startService()
    case.addCleanup(service.stopService)
    case.served = service  # type: ignore[attr-defined]  # for admin_port
    return service.port.getHost().port, service.site


def admin_port(case: TestCase) -> int:
    """The port of the admin listener of what `serve` (with
    admin_http="tcp:0:interface=127.0.0.1") started last."""
    from track.admin.service import AdminService

    admin = next(s for s in case.served if isinstance(s, AdminService))  # type: ignore[attr-defined]
    port: int = admin.port.getHost().port
    return port


def client_pool(case: TestCase) -> Any:
    """An HTTP client pool for treq that the test closes behind it."""
    from twisted.internet import reactor
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=False)
    case.addCleanup(pool.closeCachedConnections)
    return pool


async def spooled_rows(spool: Any) -> list[tuple[Any, ...]]:
    """Every row a spool holds, oldest first, as replay would read them."""
    from track.fields.kinds import KINDS
    from track.spool import decode

    rows = []
    for path in await spool.sealed():
        segment = await spool.read(path)
        rows += [decode(p, KINDS)[1] for p in segment.payloads]
    return rows


def open_spool(case: TestCase, directory: str, max_bytes: int = 10**6) -> Any:
    """A Spool on `directory`, opened and started as the service does it,
    closed when the test ends."""
    from twisted.internet import reactor

    from track.spool import Spool

    spool = Spool(directory, max_bytes, reactor)
    spool.open()
    spool.start()
    case.addCleanup(spool.close)
    return spool


def logged(case: SynchronousTestCase, namespace: str = "track") -> list[str]:
    """The log lines of `namespace` from now until the test ends."""
    lines: list[str] = []

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == namespace:
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines
