"""`python -m track.events check FILE [--dsn DSN]`: what starting with FILE
would do to a database, printed and not done.

The plan is the DDL a start would run, one statement a line, each after a
comment saying why (the frozen migrations of the original tables first,
as a start runs them); or, with exit status 1, the breaking changes that
would stop the start.  Only reads the database: a SQLite file is opened
read-only (a missing one is an empty database), a MySQL one only queried.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from track.events.declared import DeclaredKind
from track.events.files import original_kinds
from track.storage.dialect import Dialect, dialect_for
from track.storage.dsn import DSN, parse_dsn
from track.storage.evolve.catalogue import read_tables, schema_version
from track.storage.evolve.classify import Breaking, classify
from track.storage.evolve.ddl import TableDDL
from track.storage.evolve.frozen import pending
from track.storage.evolve.real import RealTable
from track.storage.evolve.record import read_applied
from track.storage.schema import V1_TABLES

EMPTY = {"mysql": "mysql://localhost/track", "sqlite": "sqlite:///track.sqlite3"}


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)  # the plan: comments and statements
    breaking: list[Breaking] = field(default_factory=list)
    statements: int = 0


def _read(conn: Any, dialect: Dialect, declared: Mapping[str, DeclaredKind]
          ) -> tuple[int, dict[str, RealTable], dict[str, DeclaredKind]]:
    cursor = conn.cursor()
    try:
        applied, _ = read_applied(cursor, dialect)
        names = {*V1_TABLES, *(k.table for k in declared.values()), *(k.table for k in applied.values())}
        return schema_version(cursor, dialect), read_tables(cursor, dialect, names), applied
    finally:
        cursor.close()


def _connect(dsn: DSN, dialect: Dialect) -> Any:
    """A connection that changes nothing (None: a SQLite file not there yet)."""
    if dsn.kind != "sqlite":
        return dialect.connect()
    if not os.path.exists(dsn.path):
        return None
    return sqlite3.connect(f"file:{quote(os.path.abspath(dsn.path))}?mode=ro", uri=True)


def inspect(declared: Mapping[str, DeclaredKind], dsn: DSN | None, empty: str = "mysql") -> Report:
    """The report for `declared` on the database `dsn` (None: an empty
    database of the `empty` dialect)."""
    dialect = dialect_for(dsn or parse_dsn(EMPTY[empty]))
    version = 0
    tables: dict[str, RealTable] = {}
    applied: dict[str, DeclaredKind] = {}
    conn = _connect(dsn, dialect) if dsn is not None else None
    if conn is not None:
        try:
            version, tables, applied = _read(conn, dialect, declared)
        finally:
            conn.close()
    steps, tables = pending(version, tables, dialect)
    plan = classify(declared, applied, tables, original_kinds())
    report = Report(breaking=plan.breaking)
    if plan.breaking:
        return report
    for what, statements in steps:
        report.lines.append(f"-- {what}" + ("" if statements else ": nothing to do"))
        report.lines += [s + ";" for s in statements]
        report.statements += len(statements)
    for change, statements in TableDDL(dialect).statements(plan, tables):
        report.lines.append(f"-- {change}" + ("" if statements else " (no DDL: validation only)"))
        report.lines += [s + ";" for s in statements]
        report.statements += len(statements)
    report.lines += [f"-- {line}" for line in plan.gone]
    return report
