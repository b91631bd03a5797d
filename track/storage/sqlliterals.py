"""MySQL VALUES lists for whole batches, built faster than pymysql builds them.

pymysql quotes each value through a chain of generic calls, about 6 us for a
row of eight columns.  That ran on the pool thread, which shares the GIL with
the reactor, and it was most of the pool thread's time per batch.  Rows here
hold only the types the field tables produce (str, int, bool, Decimal,
datetime, None), so one type test and, for strings that need it, one
str.translate per value is enough.  The text is what pymysql would send: the
tests compare it with pymysql's own escaping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

# What MySQL's string literal syntax needs escaped, as pymysql escapes it.
_BACKSLASH_ESCAPES = {0: "\\0", 10: "\\n", 13: "\\r", 26: "\\Z", 34: '\\"', 39: "\\'", 92: "\\\\"}
# With sql_mode NO_BACKSLASH_ESCAPES a backslash is an ordinary character,
# and only the quote needs doubling.
_QUOTE_DOUBLING = {39: "''"}
_NEEDS_BACKSLASH_ESCAPES = re.compile("[\0\n\r\032\"'\\\\]").search
_NEEDS_QUOTE_DOUBLING = re.compile("'").search


def values_sql(rows: Sequence[Sequence[Any]], backslash_escapes: bool = True) -> str:
    """`(v, ...), (v, ...)` for an INSERT, every value a MySQL literal.

    One loop with the type tests inline (a call per value costs more than
    the test), and one datetime literal for the rows of a batch request,
    which all carry the same receive time."""
    if backslash_escapes:
        table, needs = _BACKSLASH_ESCAPES, _NEEDS_BACKSLASH_ESCAPES
    else:
        table, needs = _QUOTE_DOUBLING, _NEEDS_QUOTE_DOUBLING
    out = []
    last_time: Any = None
    last_time_literal = ""
    for row in rows:
        parts = []
        for v in row:
            t = type(v)
            if t is str:
                parts.append("'" + (v.translate(table) if needs(v) else v) + "'")
            elif t is int:
                parts.append(str(v))
            elif v is None:
                parts.append("NULL")
            elif t is datetime:
                if v is not last_time:  # naive UTC, microseconds if any
                    last_time, last_time_literal = v, "'" + v.isoformat(" ") + "'"
                parts.append(last_time_literal)
            elif t is bool:
                parts.append("1" if v else "0")
            elif t is Decimal:
                parts.append(format(v, "f"))
            else:
                raise TypeError(f"no MySQL literal for {t.__name__}")
        out.append("(" + ",".join(parts) + ")")
    return ",".join(out)
