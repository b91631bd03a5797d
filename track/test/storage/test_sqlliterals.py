"""track's VALUES text for MySQL must be exactly what pymysql would send, and
must store every character exactly, with and without backslash escapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pymysql
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.fields.kinds import KINDS, parse_event
from track.storage.dialect import dialect_for
from track.storage.dsn import parse_dsn
from track.storage.mysql.dialect import MySQLDialect
from track.storage.sqlliterals import SAFE_CHARSETS, UnsafeLiteral, values_sql
from track.storage.store import Store
from track.test.support import MYSQL_SKIP, create_schema, execute, reset_mysql
from track.types import InternalError, Verdict

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
# Charsets in which a backslash (0x5C) or a quote can be the second byte of a
# character, so an escape can be swallowed; and others track never talks.
MULTIBYTE = ("gbk", "big5", "sjis", "cp932", "gb18030", "GBK")
NOT_TRACKS = ("latin1", "utf16", "ucs2", "binary", "")
# Strings holding a lone surrogate (a Python str has no surrogate pairs:
# "\ud83d\ude00" is two lone surrogates, not an emoji).
SURROGATES = ("\ud800", "a\udfffb", "\ud83d\ude00", "O'\udc00", "\\\udbff", "\u00e9\ud800")


def pymysql_values(rows: list[list[Any]], backslash_escapes: bool) -> str:
    def literal(v: Any) -> str:
        if isinstance(v, str) and not backslash_escapes:
            return "'" + v.replace("'", "''") + "'"  # pymysql's escape_string in that mode
        return pymysql.converters.escape_item(v, "utf8mb4")

    return ",".join("(" + ",".join(literal(v) for v in row) + ")" for row in rows)


class ValuesText(SynchronousTestCase):
    @given(st.lists(st.lists(values, min_size=1, max_size=8), min_size=1, max_size=5), st.booleans())
    def test_same_text_as_pymysql(self, rows: list[list[Any]], backslash_escapes: bool) -> None:
        self.assertEqual(values_sql(rows, "utf8mb4", backslash_escapes), pymysql_values(rows, backslash_escapes))

    def test_an_unexpected_type_is_an_error_not_a_guess(self) -> None:
        self.assertRaises(TypeError, values_sql, [[1.5]], "utf8mb4", True)

    def test_the_same_text_in_every_safe_charset(self) -> None:
        rows = [[EVERY_SPECIAL, 1, None, True, Decimal("1.5000"), datetime(2026, 1, 2, 3, 4, 5)]]
        for charset in (*SAFE_CHARSETS, "UTF8MB4"):
            for backslash_escapes in (True, False):
                self.assertEqual(values_sql(rows, charset, backslash_escapes),
                                 pymysql_values(rows, backslash_escapes), (charset, backslash_escapes))

    def test_a_multibyte_or_unknown_charset_is_refused(self) -> None:
        for charset in (*MULTIBYTE, *NOT_TRACKS):
            for backslash_escapes in (True, False):
                error = self.assertRaises(UnsafeLiteral, values_sql, [["a\\'b", 1]], charset, backslash_escapes)
                self.assertIn(f"connection charset {charset!r}", str(error))
        # Even with nothing to escape: the charset is checked first.
        self.assertRaises(UnsafeLiteral, values_sql, [[1]], "gbk", True)
        self.assertRaises(UnsafeLiteral, values_sql, [], "sjis", False)

    def test_a_lone_surrogate_is_refused(self) -> None:
        ok = ["plain", "\u00e9t\u00e9 \U0001f600", 1, None]
        for text in SURROGATES:
            for backslash_escapes in (True, False):
                for rows in ([[text]], [ok, ok, [1, text, None]], [[*ok, text], ok]):
                    error = self.assertRaises(UnsafeLiteral, values_sql, rows, "utf8mb4", backslash_escapes)
                    self.assertIn("lone surrogate", str(error))
        # What pymysql's own encoding of the statement would do with one:
        self.assertRaises(UnicodeEncodeError, "\ud800".encode, "utf8")

    def test_the_dialect_counts_a_refusal_as_a_bug(self) -> None:
        dialect = MySQLDialect(parse_dsn("mysql://u@h/db"))
        for args in (([["x"]], "gbk", True), ([["\ud800"]], "utf8mb4", True)):
            error = self.assertRaises(UnsafeLiteral, values_sql, *args)
            self.assertIs(dialect.classify(error), Verdict.BUG)
            self.assertIsNone(dialect.refusal(error))


class MySQLRoundTrip(TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
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
        kind = KINDS["session"]
        row = parse_event(kind, {"Region": "eu", "SessionID": "s1", "RemoteIP": "\\'; --",
                                  "SessionType": "x", "Message": EVERY_SPECIAL},
                          "", datetime(2026, 11, 28, 1, 2, 3))
        self.assertIsNone(store.transactions.write(conn, store.statement(kind), [row]))
        return execute(self.dsn, "SELECT Message, RemoteIP, Created FROM SessionEvent")

    def test_every_special_character_is_stored_exactly(self) -> None:
        self.assertEqual(self.store_directly(None),
                         [(EVERY_SPECIAL, "\\'; --", datetime(2026, 11, 28, 1, 2, 3))])

    def test_also_when_the_server_treats_backslashes_as_plain(self) -> None:
        self.assertEqual(self.store_directly("STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES"),
                         [(EVERY_SPECIAL, "\\'; --", datetime(2026, 11, 28, 1, 2, 3))])

    def test_a_connection_in_another_charset_is_refused_and_nothing_written(self) -> None:
        """insert_rows passes the connection's real charset: switched to gbk,
        the write is refused (a bug, raised), never sent."""
        dialect = dialect_for(self.dsn)
        store = Store(dialect)
        self.addCleanup(store.close)
        conn = dialect.connect()
        self.addCleanup(conn.close)
        conn.set_character_set("gbk")
        conn.autocommit(True)
        kind = KINDS["session"]
        row = parse_event(kind, {"Region": "eu", "SessionID": "s1", "RemoteIP": "\u00bf\\'",
                                  "SessionType": "x"}, "", datetime(2026, 11, 28, 1, 2, 3))
        error = self.assertRaises(UnsafeLiteral, store.transactions.write, conn, store.statement(kind), [row])
        self.assertIn("'gbk'", str(error))
        self.assertEqual(execute(self.dsn, "SELECT COUNT(*) FROM SessionEvent"), [(0,)])

    @inlineCallbacks
    def test_a_lone_surrogate_reaching_the_store_is_a_bug_and_nothing_is_written(self) -> Any:
        """The edge refuses lone surrogates; should one get past it, its
        batch fails as a bug (500, logged once), never as a stored row."""
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        kind = KINDS["session"]
        fields = {"Region": "eu", "SessionID": "s1", "RemoteIP": "10.0.0.1", "SessionType": "x", "Message": "ok"}
        good = parse_event(kind, fields, "", datetime(2026, 11, 28, 1, 2, 3))
        message = kind.columns.index("Message")
        bad = (*good[:message], "caf\u00e9 \udc00", *good[message + 1:])
        error = yield self.assertFailure(store.insert(kind, [good, bad]), InternalError)
        self.assertIn("UnsafeLiteral", str(error))
        self.assertEqual(len(self.flushLoggedErrors(UnsafeLiteral)), 1)
        self.assertEqual(execute(self.dsn, "SELECT COUNT(*) FROM SessionEvent"), [(0,)])

    def test_money_is_stored_exactly(self) -> Deferred[None]:
        dialect = dialect_for(self.dsn)
        store = Store(dialect)
        self.addCleanup(store.close)
        kind = KINDS["purchase"]
        row = parse_event(kind, {"ProfileID": "1", "Region": "eu", "Currency": "EUR",
                                  "GrossAmount": "0.0001", "NetAmount": "-123456789012345.5",
                                  "PaymentProvider": "p", "Product": "x"}, "", datetime(2026, 1, 1))
        d = store.insert(kind, [row])
        return d.addCallback(lambda _: self.assertEqual(
            [tuple(Decimal(v) for v in r)
             for r in execute(self.dsn, "SELECT GrossAmount, NetAmount FROM PurchaseEvent")],
            [(Decimal("0.0001"), Decimal("-123456789012345.5"))]))
