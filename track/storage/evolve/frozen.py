"""What the frozen migrations (track.storage.schema) would do to a database,
without doing it: for `python -m track.events check`, which prints the
whole plan of a start, the original tables included, and changes nothing.

It mirrors schema.py's three migrations statement for statement (the tests
compare it with what migrate() really runs); schema.py stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from track.storage.dialect import Dialect
from track.storage.evolve.ddl import Recorder
from track.storage.evolve.real import RealColumn, RealTable, mysql_column, sqlite_column
from track.storage.schema import LATE_COLUMNS, MIGRATIONS, V1_TABLES
from track.types import Column

_TYPE = re.compile(r"(\w+)(?:\((\d+)(?:,\s*(\d+))?\))?")


def as_real(column: Column, dialect: Dialect) -> RealColumn:
    """The column as the database would report it once created."""
    if dialect.name != "mysql":
        declared = "INTEGER" if column.primary_key else dialect.column_ddl(column).split(" ")[1]
        return sqlite_column(column.name, declared, 0 if column.nullable else 1, column.default,
                             1 if column.primary_key else 0)
    if column.primary_key:
        return mysql_column(column.name, "bigint", "bigint unsigned", "NO", None, None, None, None, None,
                            "auto_increment")
    m = _TYPE.fullmatch(column.type)
    assert m is not None, column.type
    base, first, second = m.group(1).lower(), m.group(2), m.group(3)
    return mysql_column(column.name, base, column.type, "YES" if column.nullable else "NO", column.default,
                        first if base in ("varchar", "char") else None, first if base == "decimal" else None,
                        second if base == "decimal" else None, first if base == "datetime" else None, "")


def _with(table: RealTable, column: RealColumn, indexes: tuple[str, ...] = ()) -> RealTable:
    return RealTable(table.name, (*table.columns, column), table.autoincrement, (*table.indexes, *indexes))


def pending(version: int, tables: Mapping[str, RealTable], dialect: Dialect
            ) -> tuple[list[tuple[str, list[str]]], dict[str, RealTable]]:
    """The migrations after `version`, each described with its statements,
    and the tables (lower-cased name -> table) as they would be after."""
    after = dict(tables)
    q = dialect.quote
    steps: list[tuple[str, list[str]]] = []
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        statements: list[str] = []
        for name, columns in V1_TABLES.items():
            key = name.lower()
            if migration.version == 1 and key not in after:
                body = ", ".join(dialect.column_ddl(c) for c in columns)
                statements.append(f"CREATE TABLE {q(name)} ({body}){dialect.table_options()}")
                after[key] = RealTable(name, tuple(as_real(c, dialect) for c in columns),
                                       autoincrement=dialect.name != "mysql")
            elif migration.version == 2 and after[key].column("MessageID") is None:
                recorder = Recorder()
                dialect.add_message_id(recorder, name)
                statements += recorder.statements
                index = tuple(s for s in recorder.statements if s.startswith("CREATE UNIQUE INDEX"))
                after[key] = _with(after[key], as_real(Column("MessageID", "varchar(64)", nullable=True), dialect),
                                   index)
            elif migration.version == 3:
                for column in columns:
                    if column.name in LATE_COLUMNS and after[key].column(column.name) is None:
                        statements.append(f"ALTER TABLE {q(name)} ADD COLUMN {dialect.column_ddl(column)}")
                        after[key] = _with(after[key], as_real(column, dialect))
        steps.append((f"schema version {migration.version} ({migration.description})", statements))
    return steps, after
