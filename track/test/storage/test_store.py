"""Storage against real databases: the embedded SQLite and a real MariaDB
(TRACK_TEST_MYSQL_DSN), including a database made by the original service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS, parse_event
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN, parse_dsn
from track.storage.prepare import prepare_database
from track.storage.schema import VERSION_TABLE, SchemaError, fit_kinds, migrate
from track.storage.store import Store
from track.test.support import (
    MYSQL_SKIP,
    ORIGINAL_MYSQL_DDL,
    create_schema,
    execute,
    reset_mysql,
    sqlite_dsn,
)
from track.types import Refusal, Unavailable

NOW = datetime(2026, 11, 28, 12, 30, 45)
TRICKY = "O'Brien \"q\" \\ ; DROP TABLE x;-- \u00e9\u00e8 \u4e2d"


def session_row(session_id: str, message: str | None = None, region: Any = "eu") -> tuple[Any, ...]:
    data = {"Region": "eu", "SessionID": session_id, "RemoteIP": "10.0.0.1", "SessionType": "login"}
    if message is not None:
        data["Message"] = message
    row = list(parse_event(KINDS["session"], data, "", NOW))
    row[0] = region
    return tuple(row)


# The mixin is a TestCase to the type checker only: trial must not collect
# it as a test case of its own.
if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object


class StoreTestsMixin(_MixinBase):
    """Behaviour every backend must have; subclasses say which database."""

    dsn: DSN

    def make_dsn(self) -> DSN:
        raise NotImplementedError

    def setUp(self) -> None:
        self.dsn = self.make_dsn()
        create_schema(self.dsn)
        self.store = Store(dialect_for(self.dsn))
        self.addCleanup(self.store.close)

    def select(self, sql: str) -> list[tuple[Any, ...]]:
        return execute(self.dsn, sql)

    @inlineCallbacks
    def test_a_batch_is_stored_exactly(self) -> Any:
        rows = [session_row("s1", TRICKY), session_row("s2"), session_row("s3", "\U0001f600 emoji")]
        outcome = yield self.store.insert(KINDS["session"], rows)
        self.assertIsNone(outcome)
        stored = self.select("SELECT SessionID, Message, Region, RemoteIP, SessionType, ProfileID "
                             "FROM SessionEvent ORDER BY EventID")
        self.assertEqual(stored, [
            ("s1", TRICKY, "eu", "10.0.0.1", "login", None),
            ("s2", None, "eu", "10.0.0.1", "login", None),
            ("s3", "\U0001f600 emoji", "eu", "10.0.0.1", "login", None),
        ])

    @inlineCallbacks
    def test_every_kind_round_trips(self) -> Any:
        samples = {
            "user": {"ProfileID": "-7", "Region": "us", "Referrer": "r"},
            "item": {"ProfileID": "2147483647", "Region": "eu", "ItemName": "n", "ItemType": "t",
                     "IsUGC": "true", "PriceGold": "-2147483648"},
            "purchase": {"ProfileID": "1", "Region": "eu", "Currency": "EUR",
                         "GrossAmount": "123456789012345.6789", "NetAmount": "-0.0001",
                         "PaymentProvider": "p", "Product": "x"},
        }
        for name, data in samples.items():
            kind = KINDS[name]
            outcome = yield self.store.insert(kind, [parse_event(kind, data, "192.0.2.7", NOW)])
            self.assertIsNone(outcome)
        self.assertEqual(self.select("SELECT ProfileID, Region, Referrer, RemoteIP FROM UserEvent"),
                         [(-7, "us", "r", "192.0.2.7")])
        self.assertEqual(
            self.select("SELECT ProfileID, IsUGC, IsRented, PriceGold, PriceSilver, RemoteIP FROM ItemEvent"),
            [(2147483647, 1, 0, -2147483648, None, "192.0.2.7")],
        )
        money = self.select("SELECT GrossAmount, NetAmount FROM PurchaseEvent")
        self.assertEqual([tuple(Decimal(v) for v in row) for row in money],
                         [(Decimal("123456789012345.6789"), Decimal("-0.0001"))])

    @inlineCallbacks
    def test_a_repeated_message_id_stores_nothing_new(self) -> Any:
        kind = KINDS["user"]

        def row(message_id: str, profile: str) -> tuple[Any, ...]:
            return parse_event(kind, {"ProfileID": profile, "Region": "eu", "MessageID": message_id},
                               "10.0.0.1", NOW)

        self.assertIsNone((yield self.store.insert(kind, [row("m-1", "1"), row("m-2", "2")])))
        # A retry, a retry inside one batch, and a new kind beside them.
        self.assertIsNone((yield self.store.insert(kind, [row("m-1", "1"), row("m-3", "3"), row("m-3", "3")])))
        self.assertEqual(
            self.select("SELECT MessageID, ProfileID FROM UserEvent ORDER BY MessageID"),
            [("m-1", 1), ("m-2", 2), ("m-3", 3)],
        )

    @inlineCallbacks
    def test_a_duplicate_does_not_hide_a_data_error(self) -> Any:
        kind = KINDS["user"]
        good = parse_event(kind, {"ProfileID": "1", "Region": "eu", "MessageID": "dup"}, "ip", NOW)
        yield self.store.insert(kind, [good])
        bad = (None, *good[1:4], "bad-1", *good[5:])  # ProfileID NULL in a NOT NULL column
        outcome = yield self.store.insert(kind, [good, bad])
        self.assertEqual(outcome[0], None)
        self.assertIsInstance(outcome[1], Refusal)
        self.assertEqual(self.select("SELECT MessageID FROM UserEvent"), [("dup",)])

    @inlineCallbacks
    def test_created_is_the_receive_time_in_utc(self) -> Any:
        yield self.store.insert(KINDS["session"], [session_row("s1")])
        (created,), = self.select("SELECT Created FROM SessionEvent")
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        self.assertEqual(created.replace(microsecond=0), NOW)

    @inlineCallbacks
    def test_a_refused_row_does_not_sink_its_batch(self) -> Any:
        rows = [session_row("good1"), session_row("bad", region=None), session_row("good2")]
        outcome = yield self.store.insert(KINDS["session"], rows)
        self.assertEqual(outcome[0], None)
        self.assertEqual(outcome[2], None)
        self.assertIsInstance(outcome[1], Refusal)
        self.assertEqual(self.select("SELECT SessionID FROM SessionEvent ORDER BY EventID"),
                         [("good1",), ("good2",)])

    def test_migrating_twice_changes_nothing(self) -> None:
        conn = dialect_for(self.dsn).connect()
        try:
            self.assertEqual(migrate(conn, dialect_for(self.dsn)), [])
        finally:
            conn.close()
        self.assertEqual(
            self.select(f"SELECT Version FROM {VERSION_TABLE} ORDER BY Version"), [(1,), (2,), (3,)]
        )


class SQLiteStoreTests(StoreTestsMixin, TestCase):
    def make_dsn(self) -> DSN:
        return sqlite_dsn(self)

    @inlineCallbacks
    def test_an_unusable_database_is_unavailable(self) -> Any:
        store = Store(dialect_for(parse_dsn("sqlite:///nonexistent-dir/x/track.db")))
        self.addCleanup(store.close)
        yield self.assertFailure(store.insert(KINDS["session"], [session_row("s")]), Unavailable)

    @inlineCallbacks
    def test_the_connections_that_write_commit_with_synchronous_full(self) -> Any:
        """In WAL mode synchronous=NORMAL may lose the last commits to a power
        cut: a 201 taken back.  Asked of a connection the store writes with."""

        def settings(conn: Any) -> tuple[Any, ...]:
            cursor = conn.cursor()
            return tuple(cursor.execute(f"PRAGMA {name}").fetchone()[0] for name in ("synchronous", "journal_mode"))

        self.assertEqual((yield self.store.pool.runWithConnection(settings)), (2, "wal"))  # 2 is FULL


class MySQLStoreTests(StoreTestsMixin, TestCase):
    skip = MYSQL_SKIP

    def make_dsn(self) -> DSN:
        return reset_mysql(self)

    @inlineCallbacks
    def test_an_unreachable_server_is_unavailable(self) -> Any:
        store = Store(dialect_for(parse_dsn("mysql://root@127.0.0.1:1/none")))
        self.addCleanup(store.close)
        yield self.assertFailure(store.insert(KINDS["session"], [session_row("s")]), Unavailable)

    @inlineCallbacks
    def test_connections_the_server_dropped_are_replaced_without_failing_writes(self) -> Any:
        yield self.store.insert(KINDS["session"], [session_row("before")])
        execute(self.dsn, *[f"KILL {pid}" for (pid,) in self.select(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()")])
        outcome = yield self.store.insert(KINDS["session"], [session_row("after")])
        self.assertIsNone(outcome)
        self.assertEqual(self.select("SELECT SessionID FROM SessionEvent ORDER BY EventID"),
                         [("before",), ("after",)])

    @inlineCallbacks
    def test_a_value_too_long_for_the_column_is_named(self) -> Any:
        long_row = (*session_row("long", "x")[:4], "x" * 46, *session_row("long")[5:])
        rows = [session_row("ok"), long_row]
        outcome = yield self.store.insert(KINDS["session"], rows)
        self.assertEqual(outcome, [None, Refusal("Message", "is too long for the database column")])

    def test_new_tables_are_utf8mb4(self) -> None:
        charsets = self.select(
            "SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%Event' "
            "AND CHARACTER_SET_NAME IS NOT NULL AND COLUMN_NAME <> 'MessageID'"
        )
        self.assertEqual(charsets, [("utf8mb4",)])


class OriginalSchemaTests(TestCase):
    """A database created by the original Go service works unchanged."""

    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        execute(self.dsn, *ORIGINAL_MYSQL_DDL)
        execute(
            self.dsn,
            "INSERT INTO SessionEvent (Region, SessionID, RemoteIP, SessionType, Created) "
            "VALUES ('eu', 'old', '1.1.1.1', 'login', '2015-01-02 03:04:05')",
            "INSERT INTO PurchaseEvent (Region, ProfileID, Currency, GrossAmount, NetAmount, "
            "PaymentProvider, Product) VALUES ('eu', 1, 'EUR', 1.5, 1.25, 'p', 'x')",
        )

    def test_adopted_without_losing_or_changing_anything(self) -> None:
        columns = ("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                   "CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                   "AND TABLE_NAME LIKE '%Event' AND COLUMN_NAME <> 'MessageID' "
                   "ORDER BY TABLE_NAME, ORDINAL_POSITION")
        before = execute(self.dsn, columns)
        kinds = prepare_database(self.dsn)
        assert kinds is not None  # the database is reachable
        self.assertEqual(execute(self.dsn, columns), before)
        self.assertEqual(
            execute(self.dsn, "SELECT SessionID, Created FROM SessionEvent"),
            [("old", datetime(2015, 1, 2, 3, 4, 5))],
        )
        self.assertEqual(execute(self.dsn, "SELECT GrossAmount FROM PurchaseEvent"), [(Decimal("1.5000"),)])
        self.assertEqual(execute(self.dsn, f"SELECT Version FROM {VERSION_TABLE} ORDER BY Version"),
                         [(1,), (2,), (3,)])
        self.assertEqual(execute(self.dsn, "SELECT COUNT(*) FROM SessionEvent WHERE MessageID IS NULL"), [(1,)])
        message = {f.name: f for f in kinds["session"].fields}["Message"]
        self.assertEqual((message.max_length, message.bmp_only), (45, True))

    @inlineCallbacks
    def test_new_events_are_stored_beside_the_old(self) -> Any:
        prepare_database(self.dsn)
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        kind = KINDS["item"]
        row = parse_event(kind, {"ProfileID": "1", "Region": "eu", "ItemName": "n", "ItemType": "t",
                                  "IsUGC": "0"}, "203.0.113.9", NOW)
        self.assertIsNone((yield store.insert(kind, [row])))
        self.assertEqual(execute(self.dsn, "SELECT RemoteIP, IsUGC, IsRented FROM ItemEvent"),
                         [("203.0.113.9", 0, 0)])

    @inlineCallbacks
    def test_a_four_byte_character_is_refused_for_that_row_only(self) -> Any:
        # Validation catches this first (bmp_only); the store must still cope
        # if a value reaches a 3-byte column.
        prepare_database(self.dsn)
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        outcome = yield store.insert(KINDS["session"], [session_row("a"), session_row("b", "\U0001f600")])
        self.assertEqual(outcome, [None, Refusal("Message", "contains characters the database column cannot store")])

    def test_a_missing_column_stops_start_up(self) -> None:
        execute(self.dsn, "ALTER TABLE UserEvent DROP COLUMN Referrer")
        dialect = dialect_for(self.dsn)
        conn = dialect.connect()
        self.addCleanup(conn.close)
        migrate(conn, dialect)
        error = self.assertRaises(SchemaError, fit_kinds, conn, dialect, KINDS)
        self.assertIn("UserEvent lacks column(s) Referrer", str(error))
