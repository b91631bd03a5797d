"""Reading what the database has: its event tables (information_schema on
MySQL, PRAGMA table_info on SQLite) and its schema version.  Reads only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from track.storage.dialect import Dialect
from track.storage.evolve.real import RealTable, mysql_column, sqlite_column
from track.storage.schema import VERSION_TABLE


def read_table(cursor: Any, dialect: Dialect, table: str) -> RealTable | None:
    """The table of that name (None: there is none)."""
    if dialect.name == "mysql":
        return _mysql_table(cursor, table)
    return _sqlite_table(cursor, table)


def read_tables(cursor: Any, dialect: Dialect, names: Iterable[str]) -> dict[str, RealTable]:
    """Lower-cased name -> table, for those of `names` that exist."""
    tables = {}
    for name in names:
        table = read_table(cursor, dialect, name)
        if table is not None:
            tables[name.lower()] = table
    return tables


def schema_version(cursor: Any, dialect: Dialect) -> int:
    """The last frozen migration applied (0: none, or no version table)."""
    if not dialect.table_exists(cursor, VERSION_TABLE):
        return 0
    q = dialect.quote
    cursor.execute(f"SELECT MAX({q('Version')}) FROM {q(VERSION_TABLE)}")
    return int(cursor.fetchone()[0] or 0)


def _mysql_table(cursor: Any, table: str) -> RealTable | None:
    cursor.execute(
        "SELECT c.TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
        "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, EXTRA, "
        "COLLATION_NAME, t.TABLE_COLLATION, COLUMN_COMMENT "
        "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
        "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
        "WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (table,),
    )
    rows = cursor.fetchall()
    if not rows:
        return None
    return RealTable(rows[0][0], tuple(mysql_column(*row[1:]) for row in rows))


def _sqlite_table(cursor: Any, table: str) -> RealTable | None:
    cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
                   (table,))
    found = cursor.fetchone()
    if found is None:
        return None
    name, sql = found
    cursor.execute(f'PRAGMA table_info("{name}")')
    columns = tuple(sqlite_column(c[1], c[2], c[3], c[4], c[5]) for c in cursor.fetchall())
    return RealTable(name, columns, autoincrement="AUTOINCREMENT" in (sql or "").upper(),
                     indexes=_sqlite_statements(cursor, "index", name),
                     triggers=_sqlite_statements(cursor, "trigger", name))


def _sqlite_statements(cursor: Any, kind: str, table: str) -> tuple[str, ...]:
    """The CREATE statements of the table's indexes or triggers, to make
    them again (an index made for a key has none: it comes with the table)."""
    cursor.execute("SELECT sql FROM sqlite_master WHERE type = ? AND tbl_name = ? AND sql IS NOT NULL "
                   "ORDER BY name", (kind, table))
    return tuple(row[0] for row in cursor.fetchall())
