"""Table and column helpers both dialects share."""

from __future__ import annotations

from typing import Any

from track.types import Column


def column_names(quote: Any, cursor: Any, table: str) -> set[str]:
    """The columns a table has, read from an empty SELECT's description."""
    cursor.execute(f"SELECT * FROM {quote(table)} WHERE 1 = 0")
    names = {d[0] for d in cursor.description}
    cursor.fetchall()
    return names


def null_default(column: Column) -> str:
    """The NULL / NOT NULL and DEFAULT part of a column's DDL."""
    sql = " NULL" if column.nullable else " NOT NULL"
    return sql + (f" DEFAULT {column.default}" if column.default is not None else "")
