"""Every difference between the kinds served and the database, classified
before anything is written.

Each kind is compared with its last applied declaration (TrackEventKinds;
for the original four on a database that has none yet, the shipped
original.json, which is what the original served) and with its real table.
Additive changes come with what to do to the tables (abstract actions, made
into each dialect's DDL by track.storage.evolve.ddl); breaking ones with
what to do instead.  Pure: no database, no dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from track.events.declared import DeclaredKind, Property
from track.events.subset import camel_table
from track.storage.evolve.columns import CREATED, MESSAGE_ID, REMOTE_IP, server_columns
from track.storage.evolve.compare import Fit, declaration_changes, fit
from track.storage.evolve.real import RealColumn, RealTable


@dataclass(frozen=True)
class CreateTable:
    kind: DeclaredKind


@dataclass(frozen=True)
class AddProperty:
    table: str
    prop: Property


@dataclass(frozen=True)
class AddRemoteIP:
    table: str


@dataclass(frozen=True)
class AddMessageID:
    table: str


@dataclass(frozen=True)
class Widen:
    """A column made to hold more: a wider type and/or NULL."""

    table: str
    prop: Property
    type: str  # the column's type after (its own, when only NULL is new)
    null: bool  # whether it takes NULL after


Action = CreateTable | AddProperty | AddRemoteIP | AddMessageID | Widen
_Breaker = Callable[[str, str], None]  # (what changed, what to keep instead)
_Changer = Callable[..., None]  # (log line, *actions)


@dataclass(frozen=True)
class Change:
    """An additive change: one log line, and what it does to the tables
    (nothing, for a rule that lives only in validation)."""

    kind: str
    table: str
    text: str
    actions: tuple[Action, ...] = ()

    def __str__(self) -> str:
        return f"kind {self.kind!r}: {self.text}"


@dataclass(frozen=True)
class Breaking:
    kind: str
    text: str
    todo: str

    def __str__(self) -> str:
        return f"kind {self.kind!r}: {self.text}; to do: {self.todo}"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    breaking: list[Breaking] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # kinds applied before, no longer served


def next_version(kind: str) -> str:
    """The name to declare a new shape of `kind` under: level_up -> level_up_2."""
    m = re.fullmatch(r"(.*)_(\d+)", kind)
    return f"{m.group(1)}_{int(m.group(2)) + 1}" if m else f"{kind}_2"


def _new_kind(kind: str) -> str:
    version = next_version(kind)
    return f"declare {version} with its own table ({camel_table(version)}) for the new shape"


def baseline(kind: DeclaredKind, applied: Mapping[str, DeclaredKind],
             original: Mapping[str, DeclaredKind]) -> DeclaredKind | None:
    """What `kind` was last served as on this database: its own record,
    else the record of its table under another name, else (an original
    kind in its original table) the shipped declaration."""
    if kind.name in applied:
        return applied[kind.name]
    table = kind.table.lower()
    by_table = next((k for k in applied.values() if k.table.lower() == table), None)
    if by_table is not None:
        return by_table
    known = original.get(kind.name)
    return known if known is not None and known.table.lower() == table else None


def classify(served: Mapping[str, DeclaredKind], applied: Mapping[str, DeclaredKind],
             tables: Mapping[str, RealTable], original: Mapping[str, DeclaredKind]) -> Plan:
    """The plan for `served` on a database with `tables` (lower-cased
    name -> table, absent ones left out) and `applied` declarations."""
    plan = Plan()
    for name, kind in served.items():
        base = baseline(kind, applied, original)
        if name in applied and base is not None and base.table.lower() != kind.table.lower():
            plan.breaking.append(Breaking(
                name, f"table changed from {base.table} to {kind.table}",
                f"keep table {base.table}, or declare a new kind (such as {next_version(name)}) "
                f"for table {kind.table}"))
            continue
        real = tables.get(kind.table.lower())
        if real is None:
            plan.changes.append(Change(name, kind.table, f"new kind, table {kind.table}", (CreateTable(kind),)))
            continue
        _compare_kind(kind, base, real, plan)
    for name, kind in applied.items():
        if name not in served:
            plan.gone.append(f"kind {name!r} is no longer served; its table {kind.table} stays, and its events "
                             "still in a spool go to the dead letters at replay")
    return plan


def _compare_kind(kind: DeclaredKind, base: DeclaredKind | None, real: RealTable, plan: Plan) -> None:
    name, table = kind.name, kind.table

    def breaking(text: str, keep: str) -> None:
        plan.breaking.append(Breaking(name, text, f"{keep}, or {_new_kind(name)}"))

    def change(text: str, *actions: Action) -> None:
        plan.changes.append(Change(name, table, text, actions))

    if real.column(CREATED) is None:
        plan.breaking.append(Breaking(name, f"table {table} has no {CREATED} column: it was not made for events",
                                      f"give kind {name} a table of its own"))
        return
    if real.column(MESSAGE_ID) is None:
        change(f"table {table} gains {MESSAGE_ID} (the idempotency key) with a unique index", AddMessageID(table))
    for prop in kind.properties:
        _compare_property(kind, prop, base, real, breaking, change)
    _remote_ip(kind, base, real, breaking, change)
    _left_over(kind, base, real, breaking, change)


def _compare_property(kind: DeclaredKind, prop: Property, base: DeclaredKind | None, real: RealTable,
                      breaking: _Breaker, change: _Changer) -> None:
    where = f"property {prop.name!r}"
    old = base.property(prop.name) if base is not None else None
    texts: list[str] = []
    if old is not None:
        texts, narrower = declaration_changes(old, prop)
        if narrower:
            for n in narrower:
                breaking(f"{where}: {n.text}", n.keep)
            return
    column = real.column(prop.name)
    if column is None:
        if prop.required:
            breaking(f"{where} is new and required (events sent before lack it)", "declare it optional")
        else:
            default = " with its default" if prop.has_default else ""
            change(f"new optional {where}{default}", AddProperty(kind.table, prop))
        return
    if base is not None and old is None:
        # A column of that name was there already (left by a property removed before).
        if prop.required:
            breaking(f"{where} is new and required (events sent before lack it)", "declare it optional")
            return
        texts.append("new optional property, in its existing column")
    fitted = fit(prop, column)
    if isinstance(fitted, str):
        breaking(f"{where}: {fitted}", "name the property otherwise")
        return
    if fitted.needed:
        texts.append(_fit_text(kind.table, column, fitted))
        change(f"{where}: {'; '.join(texts)}", Widen(kind.table, prop, fitted.type or column.type,
                                                     fitted.null or column.nullable))
    elif texts:
        change(f"{where}: {'; '.join(texts)}")


def _fit_text(table: str, column: RealColumn, fitted: Fit) -> str:
    parts = [f"column {table}.{column.name} widened from {column.type} to {fitted.type}"] if fitted.type else []
    if fitted.null:
        parts.append(f"column {table}.{column.name} now takes NULL")
    return "; ".join(parts)


def _remote_ip(kind: DeclaredKind, base: DeclaredKind | None, real: RealTable, breaking: _Breaker,
               change: _Changer) -> None:
    if not kind.remote_ip:
        return
    column = real.column(REMOTE_IP)
    if column is None:
        change(f"{REMOTE_IP} added, filled from the client's address (rows stored before get '')",
               AddRemoteIP(kind.table))
    elif "string" not in column.holds:
        breaking(f"column {kind.table}.{REMOTE_IP} is {column.type}, which cannot hold an address",
                 "leave x-track-remote-ip out")


def _left_over(kind: DeclaredKind, base: DeclaredKind | None, real: RealTable, breaking: _Breaker,
               change: _Changer) -> None:
    """Columns no longer declared: they stay, and must let an INSERT that
    leaves them out through."""
    declared = {p.name.lower() for p in kind.properties} | {c.lower() for c in server_columns(kind)}
    for column in real.columns:
        if column.name.lower() in declared:
            continue
        was = base.property(column.name) if base is not None else None
        was_ip = base is not None and base.remote_ip and column.name == REMOTE_IP
        blocks = not column.nullable and not column.has_default
        if blocks:
            what = f"property {column.name!r} removed" if was is not None else (
                "x-track-remote-ip removed" if was_ip else f"column {kind.table}.{column.name} is not declared")
            keep = f"keep {column.name} declared (optional is enough)" if not was_ip else "keep x-track-remote-ip"
            breaking(f"{what}, but column {kind.table}.{column.name} is NOT NULL without a default: "
                     "every insert would fail", keep)
        elif was is not None:
            fill = "its default" if column.has_default and not column.nullable else "NULL"
            change(f"property {column.name!r} removed: column {kind.table}.{column.name} stays, "
                   f"and events from now on leave it {fill}")
        elif was_ip:
            change(f"x-track-remote-ip removed: column {kind.table}.{REMOTE_IP} stays")
    if base is not None:
        for prop in base.properties:
            if kind.property(prop.name) is None and real.column(prop.name) is None:
                change(f"property {prop.name!r} removed")

