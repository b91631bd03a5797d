"""Applying a plan at start (and on SIGHUP), on the migration connection
under the migration lock, so two instances or workers never race: read the
tables and the applied declarations, classify, stop on anything breaking
(nothing written), else run the DDL and record the declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from track.events.declared import DeclaredKind
from track.events.files import original_kinds
from track.storage.dialect import Dialect
from track.storage.evolve.catalogue import read_tables
from track.storage.evolve.classify import Breaking, Plan, classify
from track.storage.evolve.ddl import TableDDL
from track.storage.evolve.real import RealTable
from track.storage.evolve.record import read_applied, write_applied
from track.storage.schema import SchemaError


class BreakingChanges(SchemaError):
    """The served kinds differ from the database in ways that would lose or
    refuse events; nothing was changed."""

    def __init__(self, breaking: list[Breaking]) -> None:
        self.breaking = breaking
        n = len(breaking)
        super().__init__(f"{n} breaking change{'s' if n > 1 else ''} (nothing was changed):\n"
                         + "\n".join(f"  {b}" for b in breaking))


@dataclass(frozen=True)
class Evolved:
    done: list[str]  # one line per change applied: what, and its DDL
    gone: list[str]  # kinds applied before and no longer served


def plan_for(cursor: Any, dialect: Dialect, served: Mapping[str, DeclaredKind]
             ) -> tuple[Plan, dict[str, RealTable], dict[str, str]]:
    """The plan for `served` on the database `cursor` reads, with the
    tables and the recorded texts it was made from."""
    applied, texts = read_applied(cursor, dialect)
    names = {k.table for k in served.values()} | {k.table for k in applied.values()}
    tables = read_tables(cursor, dialect, names)
    return classify(served, applied, tables, original_kinds()), tables, texts


def evolve(conn: Any, dialect: Dialect, served: Mapping[str, DeclaredKind]) -> Evolved:
    """Classify `served` against the database and apply the additive
    changes; raise BreakingChanges (nothing written) if any is breaking."""
    cursor = conn.cursor()
    dialect.lock(cursor)
    try:
        if dialect.name == "sqlite" and not conn.in_transaction:
            # SQLite's DDL is transactional: all of it or none, and a second
            # process waits here (its migration lock is a no-op).
            cursor.execute("BEGIN IMMEDIATE")
        plan, tables, texts = plan_for(cursor, dialect, served)
        if plan.breaking:
            raise BreakingChanges(plan.breaking)
        done = []
        for change, statements in TableDDL(dialect).statements(plan, tables):
            for sql in statements:
                cursor.execute(sql)
            done.append(f"{change}" + (f": {'; '.join(statements)}" if statements else ""))
        write_applied(cursor, dialect, served, texts)
        conn.commit()
        return Evolved(done, plan.gone)
    except BaseException:
        conn.rollback()
        raise
    finally:
        try:
            dialect.unlock(cursor)
        finally:
            cursor.close()
