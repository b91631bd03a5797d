"""The DDL of a plan's additive changes, for each dialect, one statement
at a time (what start-up runs, what `python -m track.events check` prints).

MySQL widens a column with MODIFY COLUMN.  SQLite needs nothing for a
longer text or a wider integer (it limits neither); to let a NOT NULL
column take NULL it rebuilds the table, as SQLite's documentation
prescribes: a new table, the rows copied, the old one dropped, the new one
renamed, its indexes made again.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from track.events.declared import DeclaredKind
from track.storage.dialect import Dialect
from track.storage.evolve.classify import (
    Action,
    AddMessageID,
    AddProperty,
    AddRemoteIP,
    Change,
    CreateTable,
    Plan,
    Widen,
)
from track.storage.evolve.columns import (
    MESSAGE_ID,
    default_value,
    property_column,
    remote_ip_column,
    table_columns,
)
from track.storage.evolve.real import RealColumn, RealTable
from track.types import Column


class Recorder:
    """A cursor that keeps the statements given to it instead of running
    them: how a dialect's own DDL helpers (add_message_id) are printed."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str, params: Any = None) -> None:
        assert params is None, "DDL takes no parameters"
        self.statements.append(sql)


def literal(value: object, dialect: str) -> str:
    """A column DEFAULT's value as an SQL literal.  MySQL reads a backslash
    in a quoted string as an escape (track's sessions never set
    NO_BACKSLASH_ESCAPES); SQLite does not.  SQLite keeps a decimal as its
    exact text, as track writes it."""
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and dialect == "mysql":
        return str(value)
    text = str(value)
    if dialect == "mysql":
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"


class TableDDL:
    """Statements for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.mysql = dialect.name == "mysql"

    def literal(self, value: object) -> str:
        return literal(value, self.dialect.name)

    def statements(self, plan: Plan, tables: Mapping[str, RealTable]) -> list[tuple[Change, list[str]]]:
        """Each change of `plan` with its statements, in order.  SQLite's
        rebuild of a table comes first among that table's statements (it
        copies the columns the table has now), taking every column of the
        table that must take NULL at once."""
        rebuilds = {} if self.mysql else self._rebuilds(plan, tables)
        out = []
        for change in plan.changes:
            statements = rebuilds.pop(change.table.lower(), [])
            for action in change.actions:
                statements += self.action(action, tables)
            out.append((change, statements))
        return out

    def action(self, action: Action, tables: Mapping[str, RealTable]) -> list[str]:
        q = self.dialect.quote
        if isinstance(action, CreateTable):
            return self.create_table(action.kind)
        if isinstance(action, AddProperty):
            column = property_column(action.prop, self.literal)
            return [f"ALTER TABLE {q(action.table)} ADD COLUMN {self.dialect.column_ddl(column)}"]
        if isinstance(action, AddRemoteIP):
            column = remote_ip_column(self.literal, added=True)
            return [f"ALTER TABLE {q(action.table)} ADD COLUMN {self.dialect.column_ddl(column)}"]
        if isinstance(action, AddMessageID):
            recorder = Recorder()
            self.dialect.add_message_id(recorder, action.table)
            return recorder.statements
        if isinstance(action, Widen) and self.mysql:
            prop = action.prop
            default = self.literal(default_value(prop)) if prop.has_default else None
            column = Column(prop.name, action.type, nullable=action.null, default=default)
            table = tables.get(action.table.lower())
            real = table.column(prop.name) if table is not None else None
            return [f"ALTER TABLE {q(action.table)} MODIFY COLUMN {self.dialect.column_ddl(column)}{self.kept(real)}"]
        return []  # SQLite: a wider type needs nothing; NULL comes with the table's rebuild

    def kept(self, real: RealColumn | None) -> str:
        """MODIFY COLUMN restates a column whole: without these a hand-set
        collation (say utf8mb4_bin, case-sensitive) would become the
        table's, and a comment would be lost."""
        if real is None:
            return ""
        sql = f" COLLATE {self.dialect.quote(real.collation)}" if real.collation else ""
        return sql + (f" COMMENT {self.literal(real.comment)}" if real.comment else "")

    def create_table(self, kind: DeclaredKind) -> list[str]:
        q = self.dialect.quote
        parts = []
        for column in table_columns(kind, self.literal):
            if column.name == MESSAGE_ID and self.mysql:
                # ASCII with binary collation, as the original tables' (schema version 2).
                parts.append(f"{q(MESSAGE_ID)} varchar(64) CHARACTER SET ascii COLLATE ascii_bin NULL")
            else:
                parts.append(self.dialect.column_ddl(column))
        if self.mysql:
            parts.append(f"UNIQUE KEY {q(MESSAGE_ID)} ({q(MESSAGE_ID)})")
        statements = [f"CREATE TABLE {q(kind.table)} ({', '.join(parts)}){self.dialect.table_options()}"]
        if not self.mysql:
            statements.append(f"CREATE UNIQUE INDEX {q(kind.table + '_' + MESSAGE_ID)} "
                              f"ON {q(kind.table)} ({q(MESSAGE_ID)})")
        return statements

    def _rebuilds(self, plan: Plan, tables: Mapping[str, RealTable]) -> dict[str, list[str]]:
        nulls: dict[str, set[str]] = {}
        for change in plan.changes:
            for action in change.actions:
                if isinstance(action, Widen) and action.null:
                    real = tables[action.table.lower()].column(action.prop.name)
                    if real is not None and not real.nullable:
                        nulls.setdefault(action.table.lower(), set()).add(real.name)
        return {table: sqlite_rebuild(tables[table], names) for table, names in nulls.items()}


def sqlite_rebuild(table: RealTable, nullable: set[str]) -> list[str]:
    """A SQLite table made again with the columns `nullable` taking NULL,
    its rows, key sequence, indexes and triggers kept (DROP TABLE drops its
    triggers).  The rename runs with legacy_alter_table: otherwise SQLite
    checks every view as it renames, and a view naming the table, gone for
    that moment, fails it ("error in view v: no such table")."""
    name, new = table.name, table.name + "__track_rebuild"
    columns = []
    for c in table.columns:
        if c.primary_key:
            columns.append(f'"{c.name}" INTEGER PRIMARY KEY' + (" AUTOINCREMENT" if table.autoincrement else ""))
            continue
        sql = f'"{c.name}" {c.type}'.rstrip()
        if not c.nullable and c.name not in nullable:
            sql += " NOT NULL"
        if c.default_sql is not None:
            sql += f" DEFAULT {c.default_sql}"
        columns.append(sql)
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    return [
        f'CREATE TABLE "{new}" ({", ".join(columns)})',
        f'INSERT INTO "{new}" ({names}) SELECT {names} FROM "{name}"',
        f'DROP TABLE "{name}"',
        "PRAGMA legacy_alter_table = ON",
        f'ALTER TABLE "{new}" RENAME TO "{name}"',
        "PRAGMA legacy_alter_table = OFF",
        *table.indexes,
        *table.triggers,
    ]
