"""TrackEventKinds: the declarations last applied to this database.

A limit that lives only in validation (minimum, maximum, enum, pattern)
leaves no trace in a column, so narrowing it could not be seen in the
tables alone: each kind's declaration is kept here, as its file wrote it,
and the next start (or SIGHUP) compares the file with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from track.events.declared import DeclaredKind
from track.events.subset import EventsFileError, read_kinds
from track.logs import Logger
from track.storage.dialect import Dialect

log = Logger(namespace="track")

KINDS_TABLE = "TrackEventKinds"


def create_statement(dialect: Dialect) -> str:
    q = dialect.quote
    return (f"CREATE TABLE IF NOT EXISTS {q(KINDS_TABLE)} ("
            f"{q('Kind')} varchar(64) NOT NULL PRIMARY KEY, "
            f"{q('TableName')} varchar(64) NOT NULL, "
            f"{q('Declaration')} mediumtext NOT NULL, "
            f"{q('AppliedAt')} timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP){dialect.table_options()}")


def _number(value: object) -> object:
    """A Decimal of the file, as a JSON number when a float says it exactly,
    else as its text (which the subset reads back as the same number)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def declaration_text(kind: DeclaredKind) -> str:
    """A kind's declaration as kept: the file's object, its table named."""
    return json.dumps({**kind.schema, "table": kind.table}, default=_number, ensure_ascii=False,
                      separators=(",", ":"))


def read_applied(cursor: Any, dialect: Dialect) -> tuple[dict[str, DeclaredKind], dict[str, str]]:
    """The kinds recorded (those this release can read) and every record's text."""
    if not dialect.table_exists(cursor, KINDS_TABLE):
        return {}, {}
    q = dialect.quote
    cursor.execute(f"SELECT {q('Kind')}, {q('Declaration')} FROM {q(KINDS_TABLE)} ORDER BY {q('Kind')}")
    applied, texts = {}, {}
    for name, text in cursor.fetchall():
        texts[name] = text
        try:
            kinds, _ = read_kinds({"kinds": {name: json.loads(text, parse_float=Decimal)}}, KINDS_TABLE)
        except (ValueError, EventsFileError) as e:
            log.warn("{table}: the recorded declaration of kind {kind} cannot be read ({e}); "
                     "its table alone is compared", table=KINDS_TABLE, kind=name, e=e)
            continue
        applied[name] = kinds[name]
    return applied, texts


def write_applied(cursor: Any, dialect: Dialect, served: Mapping[str, DeclaredKind],
                  texts: Mapping[str, str]) -> list[str]:
    """Record the served declarations that differ from their records;
    returns the kinds written.  Records of kinds no longer served stay:
    declared again, such a kind is compared with what it was."""
    q, p = dialect.quote, dialect.placeholder
    changed = [(name, declaration_text(kind), kind.table) for name, kind in served.items()
               if texts.get(name) != declaration_text(kind)]
    if not changed:
        return []
    cursor.execute(create_statement(dialect))
    for name, text, table in changed:
        cursor.execute(f"DELETE FROM {q(KINDS_TABLE)} WHERE {q('Kind')} = {p}", (name,))
        cursor.execute(f"INSERT INTO {q(KINDS_TABLE)} ({q('Kind')}, {q('TableName')}, {q('Declaration')}) "
                       f"VALUES ({p}, {p}, {p})", (name, table, text))
    return [name for name, _, _ in changed]
