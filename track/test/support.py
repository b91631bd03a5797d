"""Shared test helpers: the databases tests run against, and the original schema."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import TestCase

from track.dialects import dialect_for
from track.dsn import DSN, parse_dsn
from track.schema import VERSION_TABLE, migrate

MYSQL_DSN_TEXT = os.environ.get("TRACK_TEST_MYSQL_DSN", "")
# .ci/run greps for this marker: CI must never skip a MySQL test.
MYSQL_SKIP = None if MYSQL_DSN_TEXT else "MYSQL-SKIPPED: TRACK_TEST_MYSQL_DSN is not set"
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


def mysql_dsn() -> DSN:
    return parse_dsn(MYSQL_DSN_TEXT)


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


def reset_mysql() -> DSN:
    """An empty test database: no event tables, no version table."""
    dsn = mysql_dsn()
    execute(dsn, *(f"DROP TABLE IF EXISTS `{t}`" for t in (*TABLES, VERSION_TABLE)))
    return dsn


def create_schema(dsn: DSN) -> None:
    conn = dialect_for(dsn).connect()
    try:
        migrate(conn, dialect_for(dsn))
    finally:
        conn.close()


def serve(case: TestCase, dsn: DSN | None = None, **site_kwargs: Any) -> Any:
    """Run the whole HTTP stack in this process on 127.0.0.1:<free port>,
    storing into `dsn` (a temporary SQLite file by default).

    Returns (port, site).  Keyword arguments go to TrackSite (request_timeout,
    body_limit) and TrackApp (cors, max_body)."""
    from twisted.internet import reactor

    from track.app import TrackApp
    from track.batcher import Batcher
    from track.site import TrackSite
    from track.store import Store
    from track.database import prepare_database

    dsn = dsn or sqlite_dsn(case)
    event_types = prepare_database(dsn)
    store = Store(dialect_for(dsn))
    app_kwargs = {k: site_kwargs.pop(k) for k in ("cors", "max_body", "max_batch", "max_batch_body")
                  if k in site_kwargs}
    app = TrackApp(Batcher(store.insert, reactor), reactor, event_types,
                   atomic_insert=store.insert_atomic, **app_kwargs)
    site = TrackSite(app.resource(), **site_kwargs)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    case.addCleanup(store.close)
    case.addCleanup(port.stopListening)
    case.addCleanup(site.abort_connections)
    return port.getHost().port, site


def client_pool(case: TestCase) -> Any:
    """An HTTP client pool for treq that the test closes behind it."""
    from twisted.internet import reactor
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=False)
    case.addCleanup(pool.closeCachedConnections)
    return pool
