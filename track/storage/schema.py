"""Versioned schema migrations, and fitting the field tables to real columns.

Migrations are frozen history: each one is applied once, in order, and
recorded in TrackSchemaVersion.  Version 1 is the original service's schema,
so a database the original made is adopted as it is, without a row touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from track.fields.kinds import Kind
from track.storage.dialect import Dialect
from track.types import Column

VERSION_TABLE = "TrackSchemaVersion"


class SchemaError(RuntimeError):
    """The database's tables cannot hold the events this version writes."""


def _common(*middle: Column) -> tuple[Column, ...]:
    return (
        Column("EventID", primary_key=True),
        Column("Region", "varchar(16)"),
        *middle,
        Column("Created", "timestamp", default="CURRENT_TIMESTAMP"),
        Column("Language", "varchar(16)", nullable=True),
    )


# The original's final schema (column names, types, nullability, defaults).
V1_TABLES: dict[str, tuple[Column, ...]] = {
    "SessionEvent": _common(
        Column("SessionID", "varchar(32)"),
        Column("ProfileID", "int", nullable=True),
        Column("RemoteIP", "varchar(45)"),
        Column("SessionType", "varchar(32)"),
        Column("Message", "varchar(45)", nullable=True),
    ),
    "UserEvent": _common(
        Column("ProfileID", "int"),
        Column("Referrer", "varchar(64)", nullable=True),
        Column("Message", "varchar(45)", nullable=True),
        Column("RemoteIP", "varchar(45)"),
    ),
    "ItemEvent": _common(
        Column("ProfileID", "int"),
        Column("ItemName", "varchar(64)"),
        Column("ItemType", "varchar(45)"),
        Column("IsUGC", "tinyint(1)"),
        Column("IsRented", "tinyint(1)", default="0"),
        Column("PriceGold", "int", nullable=True),
        Column("PriceSilver", "int", nullable=True),
        Column("RemoteIP", "varchar(45)"),
    ),
    "PurchaseEvent": _common(
        Column("ProfileID", "int"),
        Column("Currency", "varchar(3)"),
        Column("GrossAmount", "decimal(19,4)"),
        Column("NetAmount", "decimal(19,4)"),
        Column("PaymentProvider", "varchar(45)"),
        Column("Product", "varchar(45)"),
    ),
}


def _create_event_tables(cursor: Any, dialect: Dialect) -> list[str]:
    notes = []
    for table, columns in V1_TABLES.items():
        if dialect.table_exists(cursor, table):
            notes.append(f"kept existing table {table} as it is")
            continue
        body = ", ".join(dialect.column_ddl(c) for c in columns)
        cursor.execute(
            f"CREATE TABLE {dialect.quote(table)} ({body}){dialect.table_options()}"
        )
        notes.append(f"created table {table}")
    return notes


def _add_message_ids(cursor: Any, dialect: Dialect) -> list[str]:
    """A MessageID column with a unique index on every event table.

    Safe to re-run: MySQL commits DDL at once, so a crash between the ALTER
    and the version row must not make the next start fail.
    """
    notes = []
    for table in V1_TABLES:
        if "MessageID" not in dialect.column_names(cursor, table):
            dialect.add_message_id(cursor, table)
            notes.append(f"added {table}.MessageID with a unique index")
    return notes


# Columns the original added late: a database its earlier releases made may
# lack them, and track writes them now.
LATE_COLUMNS = ("Language", "IsRented")


def _add_late_columns(cursor: Any, dialect: Dialect) -> list[str]:
    """Language on every event table and IsRented on ItemEvent, where an
    older schema lacks them (a no-op on the original's final schema).

    Safe to re-run, like _add_message_ids."""
    notes = []
    for table, columns in V1_TABLES.items():
        have = dialect.column_names(cursor, table)
        for column in columns:
            if column.name in LATE_COLUMNS and column.name not in have:
                cursor.execute(f"ALTER TABLE {dialect.quote(table)} ADD COLUMN {dialect.column_ddl(column)}")
                notes.append(f"added {table}.{column.name}")
    return notes or ["none missing"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Any, Dialect], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "event tables of the original service", _create_event_tables),
    Migration(2, "MessageID idempotency keys", _add_message_ids),
    Migration(3, "Language and IsRented columns", _add_late_columns),
)


def migrate(conn: Any, dialect: Dialect) -> list[str]:
    """Bring the schema up to date on a DB-API connection; return what was done."""
    cursor = conn.cursor()
    dialect.lock(cursor)
    try:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {dialect.quote(VERSION_TABLE)} ("
            f"{dialect.quote('Version')} int NOT NULL PRIMARY KEY, "
            f"{dialect.quote('Description')} varchar(255) NOT NULL, "
            f"{dialect.quote('AppliedAt')} timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        cursor.execute(f"SELECT MAX({dialect.quote('Version')}) FROM {dialect.quote(VERSION_TABLE)}")
        current = cursor.fetchone()[0] or 0
        done = []
        for m in MIGRATIONS:
            if m.version <= current:
                continue
            notes = m.apply(cursor, dialect)
            cursor.execute(
                f"INSERT INTO {dialect.quote(VERSION_TABLE)} "
                f"({dialect.quote('Version')}, {dialect.quote('Description')}) "
                f"VALUES ({dialect.placeholder}, {dialect.placeholder})",
                (m.version, m.description),
            )
            conn.commit()
            done.append(f"schema version {m.version} ({m.description}): " + "; ".join(notes))
        return done
    finally:
        dialect.unlock(cursor)
        cursor.close()


def fit_kinds(
    conn: Any, dialect: Dialect, kinds: Mapping[str, Kind]
) -> dict[str, Kind]:
    """The field tables with string limits taken from the real columns.

    A database whose columns differ from ours (a wider Message, a 3-byte utf8
    charset like the original's) is validated by what it can actually store,
    so a value it would refuse is a 400 naming the field, never a 5xx.  Also
    fails fast when a column this version writes is missing.
    """
    cursor = conn.cursor()
    fitted = {}
    try:
        for name, kind in kinds.items():
            have = dialect.column_names(cursor, kind.table)
            missing = [c for c in kind.columns if c not in have]
            if missing:
                raise SchemaError(f"table {kind.table} lacks column(s) {', '.join(missing)}")
            fitted[name] = kind.with_string_limits(dialect.string_columns(cursor, kind.table))
    finally:
        cursor.close()
    return fitted
