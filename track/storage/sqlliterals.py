"""MySQL VALUES lists for whole batches, built faster than pymysql builds them.

pymysql quotes each value through a chain of generic calls, about 6 us for a
row of eight columns.  That ran on the pool thread, which shares the GIL with
the reactor, and it was most of the pool thread's time per batch.  Rows here
hold only the types the field tables produce (str, int, bool, Decimal,
datetime, None), so one type test and, for strings that need it, one
str.translate per value is enough.  The text is what pymysql would send: the
tests compare it with pymysql's own escaping.

The escaping is only sound under conditions this module checks itself
rather than trusting its callers for them:

- the connection's character set is UTF-8 or ASCII, in which a byte below
  0x80 is always the ASCII character it looks like.  In gbk, big5, sjis,
  cp932 or gb18030 a backslash or a quote can be the second byte of a
  character, and an escape can be swallowed by it;
- the caller says whether the server's session has NO_BACKSLASH_ESCAPES
  (read from the server's status flags), since that changes what a
  backslash means inside a literal;
- no string holds a lone surrogate, which no charset can encode (the field
  parsers refuse them at the edge: here it is a bug, raised, never sent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from itertools import filterfalse
from typing import Any

# Connection charsets (MySQL's names) in which the escaping below is sound:
# every byte below 0x80 is that ASCII character wherever it appears.  track
# connects with utf8mb4; in the others the same text is just as safe.
SAFE_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})

# What MySQL's string literal syntax needs escaped, as pymysql escapes it.
_BACKSLASH_ESCAPES = {0: "\\0", 10: "\\n", 13: "\\r", 26: "\\Z", 34: '\\"', 39: "\\'", 92: "\\\\"}
# With sql_mode NO_BACKSLASH_ESCAPES a backslash is an ordinary character,
# and only the quote needs doubling.
_QUOTE_DOUBLING = {39: "''"}
_NEEDS_BACKSLASH_ESCAPES = re.compile("[\0\n\r\032\"'\\\\]").search
_NEEDS_QUOTE_DOUBLING = re.compile("'").search


class UnsafeLiteral(ValueError):
    """A VALUES text that could not be built safely: a connection charset
    the escaping is not sound in, or a string no charset can encode.  Never
    a client's mistake (the edge refuses such strings), so the dialect
    classifies it as a bug: a 500, logged, nothing acknowledged."""


def values_sql(rows: Sequence[Sequence[Any]], charset: str, backslash_escapes: bool) -> str:
    """`(v, ...), (v, ...)` for an INSERT, every value a MySQL literal.

    `charset` is the connection's character set (MySQL's name, in any
    case, as pymysql's Connection.charset has it); `backslash_escapes` is
    False when the session's sql_mode has NO_BACKSLASH_ESCAPES.  Raises
    UnsafeLiteral for a charset outside SAFE_CHARSETS or a string holding
    a lone surrogate.

    One loop with the type tests inline (a call per value costs more than
    the test), and one datetime literal for the rows of a batch request,
    which all carry the same receive time."""
    if charset.lower() not in SAFE_CHARSETS:
        raise UnsafeLiteral(
            f"refusing to build SQL literals for connection charset {charset!r}: escaping is only "
            f"sound in {', '.join(sorted(SAFE_CHARSETS))} (track connects with utf8mb4)"
        )
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
                parts.append(f"'{v.translate(table) if needs(v) else v}'")
            elif t is int:
                parts.append(str(v))
            elif v is None:
                parts.append("NULL")
            elif t is datetime:
                if v is not last_time:  # naive UTC, microseconds if any
                    last_time, last_time_literal = v, f"'{v.isoformat(' ')}'"
                parts.append(last_time_literal)
            elif t is bool:
                parts.append("1" if v else "0")
            elif t is Decimal:
                parts.append(format(v, "f"))
            else:
                raise TypeError(f"no MySQL literal for {t.__name__}")
        out.append(f"({','.join(parts)})")
    text = ",".join(out)
    # Surrogates are not ASCII, and str.isascii() costs nothing (CPython
    # keeps the flag), so only a batch holding other characters is checked,
    # and of it only the rows that hold them.  UTF-8 encodes every code
    # point but a surrogate, and encoding is faster than a regex search.
    if not text.isascii():
        for literal in filterfalse(str.isascii, out):
            try:
                literal.encode()
            except UnicodeEncodeError:
                raise UnsafeLiteral(
                    "refusing to build an SQL literal for a string holding a lone surrogate"
                ) from None
    return text
