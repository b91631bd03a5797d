"""An events file changed while the database is away, with `twistd -n
track` and a private mariadbd: track starts from the spool with the file's
kinds (validating against the saved column limits, never below what the
file declares), applies the file's additive changes when the database
appears, and replays the spooled events into the widened table.  A
breaking change found then is said once, and the events stay spooled until
a SIGHUP serves a file that fits."""

from __future__ import annotations

import json
import os
from datetime import datetime
from decimal import Decimal
from typing import Any

from track.events.files import original_kinds
from track.test import faultcase
from track.test.faultcase import TABLE, wait_until

FORM = "application/x-www-form-urlencoded"
SESSION = "Region=eu&RemoteIP=10.0.0.1&SessionType=login"


def session_file(path: str, edit: Any = None) -> None:
    body = json.loads(json.dumps(original_kinds()["session"].schema))
    if edit is not None:
        edit(body["schema"])
    with open(path, "w") as f:
        json.dump({"kinds": {"session": body}}, f)


def with_platform(schema: dict[str, Any]) -> None:
    schema["properties"]["Platform"] = {"type": "string", "maxLength": 16}
    schema["properties"]["SessionID"]["maxLength"] = 64


class EventsOutageTests(faultcase.FaultCase):
    async def test_an_additive_change_made_while_the_database_is_away_is_applied_when_it_appears(self) -> None:
        events = os.path.join(self.cwd, "events.json")
        session_file(events)
        await self.start_track("--events", events)  # creates the tables; saves SessionID's 32
        await self.stop_track()
        await self.stop_db()
        session_file(events, with_platform)
        await self.start_track("--events", events)  # no database: the file's kinds, the saved limits
        self.assertEqual((await self.health())["database"], "down")
        long_id = "s" * 50  # past the saved 32, within the file's 64
        code, _, content = await self.post("/api/1.0/track/session/",
                                           f"{SESSION}&SessionID={long_id}&Platform=ios&MessageID=p-1".encode(), FORM)
        self.assertEqual(code, 201, content)

        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(self.db.execute(f"SELECT MessageID, SessionID, Platform FROM {TABLE}", database="track"),
                         [("p-1", long_id, "ios")])
        assert self.proc is not None
        self.assertIn(b"kind 'session': new optional property 'Platform'", self.proc.output)
        self.assertEqual(self.dead_letter_ids(), [])

    async def test_a_kind_declared_while_the_database_is_away_gets_its_table_before_the_replay(self) -> None:
        events = os.path.join(self.cwd, "events.json")
        session_file(events)
        await self.start_track("--events", events)
        await self.stop_track()
        await self.stop_db()
        with open(events, "w") as f:
            json.dump({"kinds": {"level_up": {"schema": {"type": "object", "required": ["PlayerID"], "properties": {
                "PlayerID": {"type": "integer"}, "Reward": {"type": "number", "multipleOf": 0.01},
                "At": {"type": "string", "format": "date-time"}}}}}}, f)
        await self.start_track("--events", events)
        code, _, content = await self.post("/api/1.0/track/level_up/", json.dumps(
            {"PlayerID": 7, "Reward": "2.50", "At": "2026-12-07T10:00:00.25+01:00", "MessageID": "l-1"}).encode(),
            "application/json")
        self.assertEqual(code, 201, content)
        code, _, content = await self.post("/api/1.0/track/level_up/", b'{"PlayerID": 7, "Reward": "2.505"}',
                                           "application/json")
        self.assertEqual(code, 400, content)  # validated while the database is away

        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(self.db.execute("SELECT PlayerID, Reward, At, MessageID FROM LevelUpEvent", database="track"),
                         [(7, Decimal("2.50"), datetime(2026, 12, 7, 9, 0, 0, 250000), "l-1")])
        self.assertEqual(self.dead_letter_ids(), [])

    async def test_a_breaking_change_found_when_the_database_appears_keeps_the_events_spooled(self) -> None:
        events = os.path.join(self.cwd, "events.json")
        session_file(events)
        await self.start_track("--events", events)
        await self.stop_track()
        await self.stop_db()
        session_file(events, lambda s: s["properties"]["SessionID"].update(maxLength=16))
        await self.start_track("--events", events)
        code, _, content = await self.post("/api/1.0/track/session/",
                                           f"{SESSION}&SessionID=short&MessageID=b-1".encode(), FORM)
        self.assertEqual(code, 201, content)

        await self.start_db()
        assert self.proc is not None
        proc = self.proc
        said = b"the event kinds cannot be served on it"
        await wait_until(lambda: said in proc.output, "the breaking change to be said")
        self.assertIn(b"kind 'session': property 'SessionID': maxLength lowered from 32 to 16", proc.output)
        self.assertEqual((await self.health())["spool"]["events"], 1)
        self.assertEqual(self.db.execute(f"SELECT COUNT(*) FROM {TABLE}", database="track"), [(0,)])

        code, _, content = await self.post("/api/1.0/track/session/",
                                           f"{SESSION}&SessionID=short&MessageID=b-2".encode(), FORM)
        self.assertEqual(code, 201, content)  # to the spool, as while the database was away
        self.assertEqual(proc.output.count(said), 1)  # said once, not at every probe
        session_file(events)  # put right, and SIGHUP: no restart
        self.assertTrue(proc.signal("HUP"))
        await wait_until(self.drained, "the spool to be replayed")
        self.assertEqual(self.db.execute(f"SELECT MessageID FROM {TABLE} ORDER BY MessageID", database="track"),
                         [("b-1",), ("b-2",)])
        self.assertIn(b"SIGHUP: serving kinds session", proc.output)
        self.assertEqual(self.dead_letter_ids(), [])
        code, _, content = await self.post("/api/1.0/track/session/",
                                           f"{SESSION}&SessionID={'s' * 32}&MessageID=b-3".encode(), FORM)
        self.assertEqual(code, 201, content)  # SessionID's 32 again, stored at once
        self.assertEqual(self.db.execute(f"SELECT COUNT(*) FROM {TABLE}", database="track"), [(3,)])
