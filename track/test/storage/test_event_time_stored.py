"""Event time on the real path (twistd's wiring, SQLite and MariaDB): the
row's Created is the event's Timestamp, or, with SentAt, the receive time
less how long the event waited on the client."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from track.storage.dsn import DSN
from track.test.support import MYSQL_SKIP, client_pool, create_schema, execute, reset_mysql, serve, sqlite_dsn


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class EventTimeMixin:
    dsn: DSN

    def start(self: Any, *args: str) -> None:
        port, _ = serve(self, self.dsn, *args)
        self.base = f"http://127.0.0.1:{port}/api/1.0/track"
        self.pool = client_pool(self)

    @inlineCallbacks
    def post(self: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(body, dict):
            body, content_type = json.dumps(body), "application/json"
        else:
            content_type = "application/x-www-form-urlencoded"
        sent: dict[str | bytes, str | bytes] = {"Content-Type": content_type}
        sent.update(headers or {})
        response = yield treq.post(f"{self.base}/{path}/", data=body.encode(), pool=self.pool, headers=sent)
        content = yield response.content()
        return response.code, content

    def created(self: Any, table: str = "UserEvent") -> dict[str, datetime]:
        rows = execute(self.dsn, f"SELECT MessageID, Created FROM {table}")
        return {m: c if isinstance(c, datetime) else datetime.fromisoformat(c) for m, c in rows}

    @inlineCallbacks
    def test_a_timestamp_is_the_rows_created(self: Any) -> Any:
        self.start()
        hour_ago = utc_now().replace(microsecond=0) - timedelta(hours=1)
        ms = int(hour_ago.replace(tzinfo=UTC).timestamp()) * 1000 - 3_600_000
        code, _ = yield self.post("user", f"ProfileID=1&Region=eu&MessageID=form&Timestamp={rfc3339(hour_ago)}")
        self.assertEqual(code, 201)
        body = {"ProfileID": 1, "Region": "eu", "MessageID": "json", "Timestamp": ms}
        code, _ = yield self.post("user", body)
        self.assertEqual(code, 201)
        events = [{"type": "user", "ProfileID": 1, "Region": "eu", "MessageID": "batch",
                   "Timestamp": rfc3339(hour_ago - timedelta(minutes=5))}]
        code, _ = yield self.post("batch", {"SentAt": rfc3339(hour_ago), "events": events})
        self.assertEqual(code, 201)
        received = utc_now()
        created = self.created()
        self.assertEqual({m: created[m] for m in ("form", "json")},
                         {"form": hour_ago, "json": hour_ago - timedelta(hours=1)})
        # SentAt in the body: 5 minutes before it was sent, whatever the client's clock said.
        self.assertLessEqual(abs(created["batch"] - (received - timedelta(minutes=5))), timedelta(seconds=5))

    @inlineCallbacks
    def test_sent_at_corrects_a_client_clock_an_hour_behind(self: Any) -> Any:
        self.start()
        before = utc_now()
        slow = before - timedelta(hours=1)
        headers = {"Track-Sent-At": rfc3339(slow)}
        code, _ = yield self.post("user", f"ProfileID=1&Region=eu&MessageID=slow&Timestamp="
                                          f"{rfc3339(slow - timedelta(seconds=30))}", headers)
        self.assertEqual(code, 201)
        after = utc_now()
        (created,) = self.created().values()
        # Created = receive time - 30 s; the column keeps whole seconds.
        self.assertGreaterEqual(created, (before - timedelta(seconds=31)).replace(microsecond=0))
        self.assertLessEqual(created, after - timedelta(seconds=29))

    @inlineCallbacks
    def test_the_window_is_what_the_options_say(self: Any) -> Any:
        self.start("--max-clock-skew", "60", "--max-event-age", "3600")
        now = int(time.time())
        for stamp, code in ((now + 120, 400), (now - 7200, 400), (now + 30, 201), (now - 1800, 201)):
            answer, content = yield self.post("user", f"ProfileID=1&Region=eu&Timestamp={stamp * 1000}")
            self.assertEqual(answer, code, content)
            if code == 400:
                self.assertEqual(list(json.loads(content)["fields"]), ["Timestamp"])
        self.assertEqual(len(self.created()), 2)


class SQLiteEventTimeTests(EventTimeMixin, TestCase):
    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)


class MySQLEventTimeTests(EventTimeMixin, TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        create_schema(self.dsn)
