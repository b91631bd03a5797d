"""The tables as the database really has them, in the terms the
classification compares: which declared types a column can hold, and how
much of each.

Each dialect reads its catalogue (information_schema, PRAGMA table_info)
and turns a row into a RealColumn here, so the classification itself knows
no dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from track.events.declared import BOOLEAN, DATE_TIME, INT64, INTEGER, NUMBER, STRING

# MySQL's integer types: the values each holds, signed and unsigned.
_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}
_TEXTS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}


@dataclass(frozen=True)
class RealColumn:
    """One column of a real table: what it holds and how much of it."""

    name: str
    type: str  # as the database spells it, for messages
    holds: frozenset[str]  # the declared types it can store: INTEGER, BOOLEAN, STRING, NUMBER, DATE_TIME
    nullable: bool
    has_default: bool  # a DEFAULT (or AUTO_INCREMENT): an INSERT may leave it out
    length: int | None = None  # strings: characters (None: unlimited)
    int_range: tuple[int, int] | None = None  # integers (None: any 64-bit value)
    precision: int | None = None  # decimals: digits, and digits after the point (None: exact text)
    scale: int | None = None
    fraction: int | None = None  # datetimes: digits of a second (None: any)
    default_sql: str | None = None  # SQLite: the DEFAULT as written, to rebuild a table with it
    primary_key: bool = False
    # MySQL: what a MODIFY COLUMN must say again not to lose it: a collation
    # other than the table's (None: the table's), a comment.
    collation: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class RealTable:
    """A table's columns in order; for SQLite also what rebuilding it needs."""

    name: str
    columns: tuple[RealColumn, ...]
    autoincrement: bool = False  # SQLite: EventID INTEGER PRIMARY KEY AUTOINCREMENT
    indexes: tuple[str, ...] = field(default=())  # SQLite: CREATE INDEX statements to make again
    triggers: tuple[str, ...] = field(default=())  # SQLite: CREATE TRIGGER statements on it, to make again

    def column(self, name: str) -> RealColumn | None:
        """The column of that name (as the database compares names: without case)."""
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


def mysql_column(name: str, data_type: str, column_type: str, nullable: str, default: Any,
                 char_length: Any, precision: Any, scale: Any, fraction: Any, extra: str,
                 collation: str | None = None, table_collation: str | None = None,
                 comment: str | None = None) -> RealColumn:
    """A row of information_schema.COLUMNS (and its table's collation)."""
    data_type = data_type.lower()
    holds: frozenset[str] = frozenset()
    values: dict[str, Any] = {}
    if data_type in _INT_BITS:
        bits = _INT_BITS[data_type]
        unsigned = "unsigned" in column_type.lower()
        low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        holds = frozenset({INTEGER, BOOLEAN})
        values["int_range"] = (low, high)
    elif data_type in _TEXTS:
        holds = frozenset({STRING})
        values["length"] = int(char_length) if char_length is not None else None
    elif data_type in ("decimal", "numeric"):
        holds = frozenset({NUMBER})
        values.update(precision=int(precision), scale=int(scale))
    elif data_type == "datetime":
        holds = frozenset({DATE_TIME})
        values["fraction"] = int(fraction or 0)
    is_nullable = nullable.upper() == "YES"
    # MariaDB writes a nullable column without a default as the text NULL;
    # MySQL as a NULL.  Either way, a NULL column may be left out.
    has_default = default is not None or "auto_increment" in (extra or "").lower()
    own_collation = collation if collation and collation != table_collation else None
    return RealColumn(name, column_type, holds, is_nullable, has_default, collation=own_collation,
                      comment=comment or "", **values)


def sqlite_affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (its documented rules)."""
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper:
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def sqlite_column(name: str, declared: str, notnull: int, default: str | None, pk: int) -> RealColumn:
    """A row of PRAGMA table_info.  SQLite limits no length: an INTEGER
    column holds any 64-bit integer, a TEXT column any text (decimals and
    times are stored as their text, exactly)."""
    affinity = sqlite_affinity(declared)
    holds = {"INTEGER": frozenset({INTEGER, BOOLEAN}),
             "TEXT": frozenset({STRING, NUMBER, DATE_TIME})}.get(affinity, frozenset())
    return RealColumn(name, declared, holds, not notnull and not pk, default is not None or bool(pk),
                      int_range=INT64 if affinity == "INTEGER" else None, default_sql=default, primary_key=bool(pk))
