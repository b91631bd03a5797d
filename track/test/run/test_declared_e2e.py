"""A kind from an events file, end to end on SQLite and MariaDB: the whole
service (`--events FILE`), real HTTP, the row and its exact values, and the
Python client sending the kind with the collector's rules.

Until the service creates a declared kind's table itself (the evolve
work), each test creates LevelUpEvent with plain SQL first.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import treq
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.client import Client, InvalidEventError
from track.storage.dsn import DSN
from track.test.events.example import BAD, BAD_WORDS, BIG, GOOD, write_events_file
from track.test.mariadb import MYSQL_SKIP
from track.test.support import client_pool, create_schema, execute, mysql_dsn, serve, sqlite_dsn

if TYPE_CHECKING:
    MixinBase = TestCase
else:
    MixinBase = object

WAIT = 60.0
COLUMNS = "PlayerID, Level, Class, Zone, Reward, Hardcore, At, Guild, Title, MessageID"


class DeclaredEndToEndMixin(MixinBase):
    dsn: DSN

    def make_dsn(self) -> DSN:
        raise NotImplementedError

    def setUp(self) -> None:
        self.dsn = self.make_dsn()
        create_schema(self.dsn)
        events = write_events_file(self.mktemp() + ".json")
        port, _ = serve(self, self.dsn, "--events", events)
        self.base = f"http://127.0.0.1:{port}"
        self.pool = client_pool(self)

    def stored(self, where: str = "") -> list[tuple[Any, ...]]:
        return execute(self.dsn, f"SELECT {COLUMNS} FROM LevelUpEvent {where} ORDER BY EventID")

    def values(self, reward: str, hardcore: bool, at: datetime) -> tuple[Any, ...]:
        """A row's Reward, Hardcore and At as this database gives them back."""
        if self.dsn.kind == "sqlite":  # decimals and times as text, booleans as 0/1
            return reward, int(hardcore), at.isoformat(" ")
        return Decimal(reward), int(hardcore), at

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        headers: dict[str | bytes, str | bytes] = {"Content-Type": content_type}
        response = await treq.post(f"{self.base}/api/1.0/track/{path}", data=body, headers=headers, pool=self.pool)
        content = await response.content()
        return response.code, json.loads(content) if content else None

    async def test_a_declared_kind_is_stored_with_its_exact_values(self) -> None:
        self.assertEqual(await self.post("level_up/", json.dumps({**GOOD, "MessageID": "lu-1"}).encode()),
                         (201, None))
        text = {k: "true" if v is True else str(v) for k, v in GOOD.items()}
        form = urlencode({**text, "MessageID": "lu-2", "Hardcore": "f", "Reward": "0.5", "At": "2026-12-07T23:59:59Z"})
        self.assertEqual(await self.post("level_up/", form.encode(), "application/x-www-form-urlencoded"),
                         (201, None))
        first, second = self.stored()
        self.assertEqual(first, (BIG, 7, "mage", "Zoné 1",
                                 *self.values("12.50", True, datetime(2026, 12, 7, 15, 4, 5, 250000)),
                                 "ABC-12", "grand master", "lu-1"))
        self.assertEqual(second[4:7], self.values("0.50", False, datetime(2026, 12, 7, 23, 59, 59)))
        self.assertIs(type(first[0]), int)

    async def test_400_names_every_bad_field_and_stores_nothing(self) -> None:
        code, body = await self.post("level_up/", json.dumps({**BAD, "Bogus": 1}).encode())
        self.assertEqual(code, 400)
        self.assertEqual(list(body["fields"].items()), [*BAD_WORDS.items(), ("Bogus", "unknown field")])
        self.assertEqual(self.stored(), [])

    async def test_a_batch_of_mixed_kinds_and_the_defaults(self) -> None:
        events = [{"type": "level_up", "PlayerID": 1, "Level": 2, "MessageID": "lu-b"},
                  {"type": "user", "ProfileID": 7, "Region": "eu", "MessageID": "u-b"}]
        code, body = await self.post("batch/", json.dumps({"events": events}).encode())
        self.assertEqual((code, body), (201, {"stored": 2, "message_ids": ["lu-b", "u-b"]}))
        (row,) = self.stored()
        self.assertEqual(row, (1, 2, None, None, None, 0, None, None, None, "lu-b"))
        self.assertEqual(execute(self.dsn, "SELECT ProfileID, MessageID FROM UserEvent"), [(7, "u-b")])

    async def test_the_python_client_sends_a_declared_kind(self) -> None:
        """It learns the kind and its rules from the collector's document
        (fetched in track(), so that runs off the reactor, which serves it)."""
        client = Client(self.base)
        self.addCleanup(client.close, 5)
        at = datetime(2026, 12, 7, 16, 4, 5, 250000, tzinfo=timezone(timedelta(hours=1)))
        refused: dict[str, dict[str, str]] = {}

        def send() -> list[str]:
            sent = [client.track("level_up", {"PlayerID": BIG, "Level": 7, "Class": "rogue",
                                              "Reward": Decimal("12.5"), "Hardcore": True, "At": at,
                                              "Guild": "XYZ-9", "MessageID": "c-1"}),
                    client.track("level_up", {"PlayerID": 2, "Level": 100, "Reward": 0.25, "MessageID": "c-2"})]
            # Refused as the collector would, in its words.
            for field, value in (("Level", 101), ("Class", "bard"), ("Guild", "abc-1"), ("At", "yesterday"),
                                 ("Title", "Grand"), ("PlayerID", -1), ("Reward", Decimal("1.005"))):
                try:
                    client.track("level_up", {"PlayerID": 1, "Level": 1, field: value})
                except InvalidEventError as e:
                    refused[field] = e.fields
            client.flush(WAIT)
            return sent

        self.assertEqual(await deferToThread(send), ["c-1", "c-2"])
        self.assertEqual(refused, {field: {field: BAD_WORDS[field]} for field in
                                   ("Level", "Class", "Guild", "At", "Title", "PlayerID", "Reward")})
        rows = self.stored()
        self.assertEqual(rows[0], (BIG, 7, "rogue", None,
                                   *self.values("12.50", True, at.astimezone(UTC).replace(tzinfo=None)),
                                   "XYZ-9", None, "c-1"))
        self.assertEqual(rows[1][:5], (2, 100, None, None, self.values("0.25", False, at)[0]))


class SQLiteDeclaredTests(DeclaredEndToEndMixin, TestCase):
    def make_dsn(self) -> DSN:
        return sqlite_dsn(self)


class MySQLDeclaredTests(DeclaredEndToEndMixin, TestCase):
    skip = MYSQL_SKIP

    def make_dsn(self) -> DSN:
        return mysql_dsn(self)
