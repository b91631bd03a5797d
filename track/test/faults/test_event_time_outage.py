"""Event time across an outage, with `twistd -n track` and a private
mariadbd: an event acknowledged from the spool keeps its event time through
the replay, and a database that appears after start with wider columns
shows its limits in /api/1.0/openapi.json."""

from __future__ import annotations

import json
import time
from typing import Any

import treq
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool

from track.test import faultcase
from track.test.faultcase import TABLE, wait_until

FORM = "application/x-www-form-urlencoded"
SESSION = "Region=eu&SessionID=s&RemoteIP=10.0.0.1&SessionType=login"


class EventTimeOutageTests(faultcase.FaultCase):
    async def openapi(self) -> Any:
        response = await treq.get(f"{self.base}/api/1.0/openapi.json", pool=HTTPConnectionPool(reactor, False),
                                  timeout=10)
        return json.loads(await response.content())

    async def test_an_event_spooled_in_an_outage_keeps_its_time_through_the_replay(self) -> None:
        await self.start_track()
        await self.stop_db()
        stamp = int(time.time()) - 3600  # an hour ago, whole seconds
        code, _, content = await self.post("/api/1.0/track/session/",
                                           f"{SESSION}&MessageID=old&Timestamp={stamp * 1000}".encode(), FORM)
        self.assertEqual(code, 201, content)
        sent = int(time.time()) - 7200  # a clock two hours slow: the event waited 60 s on the client
        code, _, content = await self.post(
            "/api/1.0/track/batch/", json.dumps({"SentAt": sent * 1000, "events": [
                {"type": "session", "Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1",
                 "SessionType": "login", "MessageID": "waited", "Timestamp": (sent - 60) * 1000}]}).encode(),
            "application/json")
        received = time.time()
        self.assertEqual(code, 201, content)
        self.assertEqual((await self.health())["database"], "down")
        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        rows = dict(self.db.execute(f"SELECT MessageID, UNIX_TIMESTAMP(Created) FROM {TABLE}", database="track"))
        self.assertEqual(int(rows["old"]), stamp)
        self.assertLessEqual(abs(float(rows["waited"]) - (received - 60)), 5)
        self.assertEqual(self.dead_letter_ids(), [])

    async def test_a_database_appearing_after_start_with_wider_columns_widens_the_document(self) -> None:
        await self.start_track()  # creates the tables; saves SessionType's 32 beside the spool
        await self.stop_track()
        self.db.execute(f"ALTER TABLE {TABLE} MODIFY SessionType varchar(100) NOT NULL", database="track")
        await self.stop_db()
        await self.start_track()  # no database: the limits saved before the ALTER
        doc = await self.openapi()

        def session_type(doc: Any) -> int:
            schema = doc["paths"]["/api/1.0/track/session/"]["post"]["requestBody"]["content"][
                "application/json"]["schema"]
            length: int = schema["properties"]["SessionType"]["maxLength"]
            return length

        self.assertEqual(session_type(doc), 32)
        await self.start_db()

        async def widened() -> bool:
            return session_type(await self.openapi()) == 100

        await wait_until(widened, "the document to show the wider column")
        code, _, content = await self.post("/api/1.0/track/session/",
                                           f"{SESSION.replace('login', 'w' * 100)}&MessageID=w".encode(), FORM)
        self.assertEqual(code, 201, content)
