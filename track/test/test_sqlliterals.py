"""track's VALUES text for MySQL must be exactly what pymysql would send, and
must store every character exactly, with and without backslash escapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pymysql
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.fields.kinds import EVENT_TYPES, parse_event
from track.storage.dialect import dialect_for
from track.storage.sqlliterals import values_sql
from track.storage.store import Store
from track.test.support import MYSQL_SKIP, create_schema, execute, reset_mysql

values = st.one_of(
    st.text(),
    st.text(alphabet="\0\n\r\x1a\"'\\%ab"),
    st.integers(),
    st.booleans(),
    st.none(),
    st.datetimes(),
    st.decimals(places=4, allow_nan=False, allow_infinity=False),
)
EVERY_SPECIAL = "a\0b\nc\rd\x1ae\"f'g\\h%s%%i''\\'j \u00e9 \U0001f600"


def pymysql_values(rows: list[list[Any]], backslash_escapes: bool) -> str:
    def literal(v: Any) -> str:
        if isinstance(v, str) and not backslash_escapes:
            return "'" + v.replace("'", "''") + "'"  # pymysql's escape_string in that mode
        return pymysql.converters.escape_item(v, "utf8mb4")

    return ",".join("(" + ",".join(literal(v) for v in row) + ")" for row in rows)


class ValuesText(SynchronousTestCase):
    @given(st.lists(st.lists(values, min_size=1, max_size=8), min_size=1, max_size=5), st.booleans())
    def test_same_text_as_pymysql(self, rows: list[list[Any]], backslash_escapes: bool) -> None:
        self.assertEqual(values_sql(rows, backslash_escapes), pymysql_values(rows, backslash_escapes))

    def test_an_unexpected_type_is_an_error_not_a_guess(self) -> None:
        self.assertRaises(TypeError, values_sql, [[1.5]])


class MySQLRoundTrip(TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql()
        create_schema(self.dsn)

    def store_directly(self, sql_mode: str | None) -> list[tuple[Any, ...]]:
        """Store.write on one connection, in the given sql_mode, and read back."""
        dialect = dialect_for(self.dsn)
        store = Store(dialect)
        self.addCleanup(store.close)
        args, kwargs = dialect.pool_args()
        conn = __import__(args[0], fromlist=["connect"]).connect(
            **{k: v for k, v in kwargs.items() if not k.startswith("cp_")})
        self.addCleanup(conn.close)
        if sql_mode is not None:
            conn.cursor().execute(f"SET SESSION sql_mode = '{sql_mode}'")
        event = EVENT_TYPES["session"]
        row = parse_event(event, {"Region": "eu", "SessionID": "s1", "RemoteIP": "\\'; --",
                                  "SessionType": "x", "Message": EVERY_SPECIAL},
                          "", datetime(2026, 11, 28, 1, 2, 3))
        self.assertIsNone(store._write(conn, store.statement(event), [row]))
        return execute(self.dsn, "SELECT Message, RemoteIP, Created FROM SessionEvent")

    def test_every_special_character_is_stored_exactly(self) -> None:
        self.assertEqual(self.store_directly(None),
                         [(EVERY_SPECIAL, "\\'; --", datetime(2026, 11, 28, 1, 2, 3))])

    def test_also_when_the_server_treats_backslashes_as_plain(self) -> None:
        self.assertEqual(self.store_directly("STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES"),
                         [(EVERY_SPECIAL, "\\'; --", datetime(2026, 11, 28, 1, 2, 3))])

    def test_money_is_stored_exactly(self) -> None:
        dialect = dialect_for(self.dsn)
        store = Store(dialect)
        self.addCleanup(store.close)
        event = EVENT_TYPES["purchase"]
        row = parse_event(event, {"ProfileID": "1", "Region": "eu", "Currency": "EUR",
                                  "GrossAmount": "0.0001", "NetAmount": "-123456789012345.5",
                                  "PaymentProvider": "p", "Product": "x"}, "", datetime(2026, 1, 1))
        d = store.insert(event, [row])
        d.addCallback(lambda _: self.assertEqual(
            [tuple(Decimal(v) for v in r)
             for r in execute(self.dsn, "SELECT GrossAmount, NetAmount FROM PurchaseEvent")],
            [(Decimal("0.0001"), Decimal("-123456789012345.5"))]))
        return d
