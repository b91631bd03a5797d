"""The batch endpoint on the real HTTP stack and real databases: JSON and
NDJSON, gzip, limits, and all-or-nothing storage."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS, parse_event
from track.storage.dialect import dialect_for
from track.storage.store import Store
from track.test.mariadb import MYSQL_SKIP
from track.test.support import (
    TABLES,
    client_pool,
    create_schema,
    execute,
    reset_mysql,
    serve,
    sqlite_dsn,
)

EVENTS: list[dict[str, Any]] = [
    {"type": "session", "Region": "eu", "SessionID": "s1", "RemoteIP": "10.0.0.1", "SessionType": "login"},
    {"type": "user", "ProfileID": 7, "Region": "us", "MessageID": "u-1"},
    {"type": "item", "ProfileID": "7", "Region": "eu", "ItemName": "axe", "ItemType": "w", "IsUGC": True},
    {"type": "purchase", "ProfileID": 7, "Region": "eu", "Currency": "EUR", "GrossAmount": "9.99",
     "NetAmount": 8.5, "PaymentProvider": "card", "Product": "gems"},
    {"type": "user", "ProfileID": 8, "Region": "us"},
]
# treq's type for a headers dict: a plain dict[str, str] does not match it.
HeaderDict = dict[str | bytes, str | bytes]
JSON: HeaderDict = {"Content-Type": "application/json"}
NDJSON: HeaderDict = {"Content-Type": "application/x-ndjson"}
# EVENTS as stored (RemoteIP of session events is the client's field, not the peer).
STORED = {
    "SessionEvent": [("eu", "s1", "10.0.0.1", "login")],
    "UserEvent": [(7, "us"), (8, "us")],
    "ItemEvent": [(7, "eu", "axe", "w", 1)],
    "PurchaseEvent": [(7, "eu", "EUR", "9.99", "8.50", "card", "gems")],
}


# The mixin's methods run as TestCase methods, so mypy checks them as such;
# at run time only the concrete classes below are TestCases (trial would
# otherwise collect the mixin as a test case of its own).
if TYPE_CHECKING:
    MixinBase = TestCase
else:
    MixinBase = object


class BatchMixin(MixinBase):
    def make_dsn(self) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.dsn = self.make_dsn()
        port, _ = serve(self, self.dsn, max_batch=10, max_batch_body=4096)
        self.url = f"http://127.0.0.1:{port}/api/1.0/track/batch/"
        self.pool = client_pool(self)

    def counts(self) -> dict[str, int]:
        return {t: execute(self.dsn, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}

    def stored(self) -> dict[str, list[tuple[Any, ...]]]:
        """Each table's rows, as the values EVENTS were sent with (money as text)."""
        rows = {
            "SessionEvent": execute(self.dsn, "SELECT Region, SessionID, RemoteIP, SessionType FROM SessionEvent"),
            "UserEvent": execute(self.dsn, "SELECT ProfileID, Region FROM UserEvent ORDER BY ProfileID"),
            "ItemEvent": execute(self.dsn, "SELECT ProfileID, Region, ItemName, ItemType, IsUGC FROM ItemEvent"),
            "PurchaseEvent": execute(self.dsn, "SELECT ProfileID, Region, Currency, GrossAmount, NetAmount, "
                                               "PaymentProvider, Product FROM PurchaseEvent"),
        }
        rows["PurchaseEvent"] = [(*r[:3], f"{Decimal(r[3]):.2f}", f"{Decimal(r[4]):.2f}", *r[5:])
                                 for r in rows["PurchaseEvent"]]
        return rows

    def post(self, body: bytes, headers: HeaderDict) -> Any:
        return treq.post(self.url, data=body, headers=headers, pool=self.pool)

    @inlineCallbacks
    def test_a_json_batch_of_every_kind_is_stored(self) -> Any:
        response = yield self.post(json.dumps({"events": EVENTS}).encode(), JSON)
        body = yield response.json()
        self.assertEqual(response.code, 201, body)
        self.assertEqual(body["stored"], 5)
        self.assertEqual(body["message_ids"][1], "u-1")
        self.assertEqual(self.stored(), STORED)
        stored = execute(self.dsn, "SELECT MessageID FROM UserEvent ORDER BY ProfileID")
        self.assertEqual([m for (m,) in stored], [body["message_ids"][1], body["message_ids"][4]])

    @inlineCallbacks
    def test_ndjson_and_gzip(self) -> Any:
        lines = b"\n".join(json.dumps(e).encode() for e in EVENTS) + b"\n"
        response = yield self.post(gzip.compress(lines), {**NDJSON, "Content-Encoding": "gzip"})
        body = yield response.json()
        self.assertEqual(response.code, 201, body)
        self.assertEqual(self.stored(), STORED)
        self.assertEqual(body["message_ids"][1], "u-1")
        self.assertEqual(execute(self.dsn, "SELECT MessageID FROM UserEvent WHERE ProfileID = 7"), [("u-1",)])

    @inlineCallbacks
    def test_plain_ndjson_without_a_last_newline(self) -> Any:
        lines = b"\n".join(json.dumps(e).encode() for e in EVENTS)
        response = yield self.post(lines, NDJSON)
        self.assertEqual(response.code, 201, (yield response.content()))
        self.assertEqual(self.stored(), STORED)

    @inlineCallbacks
    def test_one_bad_event_stores_nothing_and_every_bad_one_is_named(self) -> Any:
        events = [*EVENTS, {"type": "user", "Region": "e"}, {"type": "bogus"}, "text"]
        response = yield self.post(json.dumps({"events": events}).encode(), JSON)
        body = yield response.json()
        self.assertEqual(response.code, 400)
        self.assertEqual([p["index"] for p in body["events"]], [5, 6, 7])
        self.assertEqual(body["events"][0]["fields"], {
            "ProfileID": "is required", "Region": "must be 2 to 16 letters A-Z or a-z"})
        self.assertEqual(sum(self.counts().values()), 0)

    @inlineCallbacks
    def test_limits(self) -> Any:
        too_many = json.dumps({"events": [EVENTS[1]] * 11}).encode()
        cases: list[tuple[bytes, HeaderDict, int]] = [
            (too_many, JSON, 413),
            (b"x" * 5000, JSON, 413),
            (gzip.compress(b" " * 10000 + b'{"events": []}'), {**JSON, "Content-Encoding": "gzip"}, 413),
            (b'{"events": []}', JSON, 400),
            (b'{"events": {}}', JSON, 400),
            (b'{"events": [], "extra": 1}', JSON, 400),
            (b'{"type": "user"}\n{broken', NDJSON, 400),
            (b"a,b", {"Content-Type": "text/csv"}, 415),
        ]
        for body, headers, code in cases:
            response = yield self.post(body, headers)
            content = yield response.content()
            self.assertEqual(response.code, code, (body[:40], content))
        self.assertEqual(sum(self.counts().values()), 0)

    @inlineCallbacks
    def test_a_retried_batch_stores_nothing_twice(self) -> Any:
        events = [dict(e, MessageID=f"b-{i}") for i, e in enumerate(EVENTS)]
        for _ in range(2):
            response = yield self.post(json.dumps({"events": events}).encode(), JSON)
            self.assertEqual(response.code, 201)
        self.assertEqual(sum(self.counts().values()), 5)


class SQLiteBatchTests(BatchMixin, TestCase):
    def make_dsn(self) -> Any:
        return sqlite_dsn(self)


class MySQLBatchTests(BatchMixin, TestCase):
    skip = MYSQL_SKIP

    def make_dsn(self) -> Any:
        return reset_mysql(self)


class AtomicStoreTests(TestCase):
    """What validation cannot catch, the database refuses: still nothing kept."""

    @inlineCallbacks
    def check(self, dsn: Any) -> Any:
        create_schema(dsn)
        store = Store(dialect_for(dsn))
        self.addCleanup(store.close)
        user, item = KINDS["user"], KINDS["item"]
        good = parse_event(user, {"ProfileID": "1", "Region": "eu"}, "ip", __import__("datetime").datetime(2026, 1, 1))
        bad = (None, *good[1:])
        item_row = parse_event(item, {"ProfileID": "1", "Region": "eu", "ItemName": "a", "ItemType": "b",
                                      "IsUGC": "1"}, "ip", good[-1])
        refused = yield store.insert_atomic([(item, [item_row]), (user, [good, bad])])
        self.assertEqual([(g, r, e.column) for g, r, e in refused], [(1, 1, "ProfileID")])
        self.assertEqual(execute(dsn, "SELECT COUNT(*) FROM ItemEvent"), [(0,)])
        self.assertIsNone((yield store.insert_atomic([(item, [item_row]), (user, [good])])))
        self.assertEqual(execute(dsn, "SELECT COUNT(*) FROM UserEvent"), [(1,)])

    def test_sqlite(self) -> Any:
        return self.check(sqlite_dsn(self))

    def test_mysql(self) -> Any:
        if MYSQL_SKIP:
            self.skipTest(MYSQL_SKIP)
        return self.check(reset_mysql(self))
