"""Language (every kind) and IsRented (items): stored, and added to a
database made before the original service had them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS, parse_event
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN
from track.storage.prepare import prepare_database
from track.storage.store import Store
from track.test.support import MYSQL_SKIP, ORIGINAL_MYSQL_DDL, execute, reset_mysql, sqlite_dsn

NOW = datetime(2026, 11, 29, 12, 0, 0)
ITEM = {"ProfileID": "7", "Region": "eu", "ItemName": "sword", "ItemType": "weapon", "IsUGC": "0"}
OLDER_SCHEMA = (
    *(f"ALTER TABLE {t} DROP COLUMN Language" for t in ("SessionEvent", "UserEvent", "ItemEvent", "PurchaseEvent")),
    "ALTER TABLE ItemEvent DROP COLUMN IsRented",
)


class LateColumnsMixin:
    dsn: DSN

    @inlineCallbacks
    def store_items(self: Any, *items: dict[str, str]) -> Any:
        kinds = prepare_database(self.dsn)
        assert kinds is not None
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        kind = kinds["item"]
        rows = [parse_event(kind, item, "203.0.113.9", NOW) for item in items]
        self.assertEqual((yield store.insert(kind, rows)), None)

    @inlineCallbacks
    def test_language_and_is_rented_are_stored(self: Any) -> Any:
        yield self.store_items({**ITEM, "Language": "pt-BR", "IsRented": "true"}, dict(ITEM, ProfileID="8"))
        self.assertEqual(
            [tuple(r) for r in execute(self.dsn, "SELECT ProfileID, Language, IsRented FROM ItemEvent "
                                                 "ORDER BY ProfileID")],
            [(7, "pt-BR", 1), (8, None, 0)],
        )


class SQLiteLateColumnsTests(LateColumnsMixin, TestCase):
    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)


class MySQLLateColumnsTests(LateColumnsMixin, TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)

    @inlineCallbacks
    def test_an_older_original_database_gets_the_columns_and_keeps_its_rows(self) -> Any:
        execute(self.dsn, *ORIGINAL_MYSQL_DDL, *OLDER_SCHEMA)
        execute(self.dsn, "INSERT INTO ItemEvent (Region, ProfileID, ItemName, ItemType, IsUGC, RemoteIP) "
                          "VALUES ('eu', 1, 'old', 'x', 1, '1.1.1.1')")
        yield self.store_items({**ITEM, "Language": "de", "IsRented": "1"})
        self.assertEqual(
            execute(self.dsn, "SELECT ItemName, Language, IsRented FROM ItemEvent ORDER BY EventID"),
            [("old", None, 0), ("sword", "de", 1)],
        )
        columns = execute(
            self.dsn,
            "SELECT TABLE_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME IN ('Language', 'IsRented') "
            "ORDER BY TABLE_NAME, COLUMN_NAME",
        )
        self.assertEqual([tuple(c) for c in columns], [
            ("ItemEvent", "tinyint(1)", "NO", "0"),
            ("ItemEvent", "varchar(16)", "YES", "NULL"),
            ("PurchaseEvent", "varchar(16)", "YES", "NULL"),
            ("SessionEvent", "varchar(16)", "YES", "NULL"),
            ("UserEvent", "varchar(16)", "YES", "NULL"),
        ])


class SpooledBeforeTheseFieldsTests(TestCase):
    """Records spooled by a release without Language/IsRented still replay."""

    def test_a_record_without_the_new_columns_reads_as_not_given(self) -> None:
        from track.spool.records import decode

        payload = (b'{"type":"item","columns":{"ProfileID":7,"Region":"eu","ItemName":"s","ItemType":"w",'
                   b'"IsUGC":true,"MessageID":"m1","RemoteIP":"1.2.3.4","Created":"2026-11-28T12:00:00"}}')
        event, row = decode(payload, KINDS)
        values = dict(zip(event.columns, row, strict=True))
        self.assertEqual((values["IsRented"], values["Language"], values["MessageID"]), (False, None, "m1"))
        v1 = b'["user",[7,"eu",null,null,"m2","1.2.3.4","2026-11-28T12:00:00"]]'
        event, row = decode(v1, KINDS)
        self.assertEqual(dict(zip(event.columns, row, strict=True))["Language"], None)
