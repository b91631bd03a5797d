"""SIGHUP on a real `twistd track --events FILE` (MariaDB): an additive
change is applied and served with the stored rows intact and the pool's
connections kept; a breaking change, or a file that does not parse, is
refused and logged, and the running kinds stay.  With --workers, the
parent passes SIGHUP on to every worker.  And a breaking change at start:
exit status 1, naming it."""

from __future__ import annotations

import json
import os
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.events.files import original_kinds
from track.test.mariadb import MYSQL_SKIP
from track.test.process import TWISTD, TwistdTrack, child_env, port_of, wait_until
from track.test.support import dsn_text, execute, mysql_dsn, mysql_dsn_text, sqlite_dsn

SESSION: dict[str, Any] = original_kinds()["session"].schema  # the shipped declaration, as the file wrote it


def session(edit: Any = None) -> dict[str, Any]:
    """The original session kind, edited."""
    body: dict[str, Any] = json.loads(json.dumps(SESSION, default=str))
    if edit is not None:
        edit(body["schema"])
    return body


LEVEL_UP = {"schema": {"type": "object", "required": ["PlayerID"], "properties": {
    "PlayerID": {"type": "integer"}, "Level": {"type": "integer", "minimum": 1, "maximum": 100}}}}


def with_platform(schema: dict[str, Any]) -> None:
    """Additive: a new optional property, and a longer SessionID."""
    schema["properties"]["Platform"] = {"type": "string", "maxLength": 16}
    schema["properties"]["SessionID"]["maxLength"] = 64


class ReloadTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    def write(self, text: str) -> None:
        with open(self.events + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.events + ".tmp", self.events)  # as an editor saves: never half a file

    def declare(self, body: dict[str, Any]) -> None:
        self.write(json.dumps({"kinds": {"session": body}}))

    async def start(self, *more: str) -> int:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.events = os.path.join(cwd, "events.json")
        self.declare(session())
        self.proc = TwistdTrack(["--dsn", mysql_dsn_text(self), "--http", "tcp:0:interface=127.0.0.1",
                                 "--events", self.events, *more], cwd)
        self.addCleanup(self.proc.stop)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        return port_of(await self.proc.ready)

    async def post(self, port: int, n: int, **more: str) -> tuple[int, bytes]:
        fields = {"Region": "eu", "SessionID": f"s-{n}", "RemoteIP": "203.0.113.7", "SessionType": "login",
                  "MessageID": f"m-{n}", **more}
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/session/", json=fields, pool=self.pool)
        body: bytes = await response.content()
        return response.code, body

    async def hup(self, expect: bytes, count: int = 1) -> None:
        """SIGHUP, then wait for `count` more log lines containing `expect`."""
        before = self.proc.output.count(expect)
        self.assertTrue(self.proc.signal("HUP"))
        try:
            await wait_until(lambda: self.proc.output.count(expect) >= before + count, expect.decode())
        except AssertionError as e:  # seen once in CI, not since: the log says what the workers did
            tail = self.proc.output.decode("utf-8", "replace").splitlines()[-60:]
            raise AssertionError(f"{e}; the log's last lines:\n" + "\n".join(tail)) from None

    def pool_connections(self) -> set[int]:
        """The server's connection ids on this test's database (the service's pool)."""
        name = mysql_dsn(self).database
        return {i for (i,) in execute(mysql_dsn(self), "SELECT ID FROM information_schema.PROCESSLIST "
                                                       "WHERE DB = %s AND ID <> CONNECTION_ID()", params=(name,))}

    async def test_an_additive_change_by_sighup_is_served_with_the_rows_intact(self) -> None:
        port = await self.start()
        self.assertEqual(await self.post(port, 1), (201, b""))
        self.assertEqual((await self.post(port, 2, Platform="ios"))[0], 400)  # not declared yet
        connections = self.pool_connections()

        self.declare(session(with_platform))
        await self.hup(b"SIGHUP: serving kinds session, user, item, purchase")
        self.assertIn(b"kind 'session': new optional property 'Platform': ALTER TABLE `SessionEvent` ADD COLUMN "
                      b"`Platform` varchar(16) NULL", self.proc.output)
        self.assertIn(b"kind 'session': property 'SessionID': maxLength raised from 32 to 64; column "
                      b"SessionEvent.SessionID widened from varchar(32) to varchar(64)", self.proc.output)
        self.assertEqual(await self.post(port, 3, Platform="ios", SessionID="x" * 64), (201, b""))
        self.assertEqual(execute(mysql_dsn(self), "SELECT MessageID, SessionID, Platform FROM SessionEvent "
                                                  "ORDER BY MessageID"),
                         [("m-1", "s-1", None), ("m-3", "x" * 64, "ios")])
        self.assertLessEqual(connections, self.pool_connections())  # none dropped

    async def test_a_breaking_change_or_a_broken_file_by_sighup_is_refused_and_the_kinds_stay(self) -> None:
        port = await self.start()
        self.assertEqual(await self.post(port, 1, SessionID="x" * 32), (201, b""))

        self.declare(session(lambda s: s["properties"]["SessionID"].update(maxLength=8)))
        await self.hup(b"SIGHUP: refused, the running kinds stay")
        self.assertIn(b"1 breaking change (nothing was changed):", self.proc.output)
        self.assertIn(b"  kind 'session': property 'SessionID': maxLength lowered from 32 to 8; to do: keep "
                      b"maxLength 32, or declare session_2 with its own table (Session2Event) for the new shape",
                      self.proc.output)
        self.write("{not json")
        await self.hup(b"SIGHUP: refused, the running kinds stay")
        self.assertIn(b"events.json: not JSON", self.proc.output)

        self.assertEqual(await self.post(port, 2, SessionID="y" * 32), (201, b""))  # still 32
        self.assertEqual(execute(mysql_dsn(self), "SELECT MessageID FROM SessionEvent ORDER BY MessageID"),
                         [("m-1",), ("m-2",)])
        self.assertEqual(execute(mysql_dsn(self), "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS "
                                                  "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'SessionEvent' "
                                                  "AND COLUMN_NAME = 'SessionID'"), [(32,)])

    async def test_a_kind_added_by_sighup_gets_its_table_and_one_removed_is_gone(self) -> None:
        port = await self.start()
        url = f"http://127.0.0.1:{port}/api/1.0/track/level_up/"
        response = await treq.post(url, json={"PlayerID": 7}, pool=self.pool)
        self.assertEqual((response.code, await response.content() != b""), (404, True))

        self.write(json.dumps({"kinds": {"session": session(), "level_up": LEVEL_UP}}))
        await self.hup(b"SIGHUP: serving kinds session, user, item, purchase, level_up")
        self.assertIn(b"kind 'level_up': new kind, table LevelUpEvent: CREATE TABLE `LevelUpEvent`", self.proc.output)
        response = await treq.post(url, json={"PlayerID": 7, "Level": "12", "MessageID": "l-1"}, pool=self.pool)
        self.assertEqual((response.code, await response.content()), (201, b""))
        self.assertEqual(execute(mysql_dsn(self), "SELECT PlayerID, Level, MessageID FROM LevelUpEvent"),
                         [(7, 12, "l-1")])

        self.declare(session())
        await self.hup(b"SIGHUP: serving kinds session, user, item, purchase\n")
        self.assertIn(b"kind 'level_up' is no longer served; its table LevelUpEvent stays", self.proc.output)
        response = await treq.post(url, json={"PlayerID": 8}, pool=self.pool)
        await response.content()
        self.assertEqual(response.code, 404)
        self.assertEqual(execute(mysql_dsn(self), "SELECT COUNT(*) FROM LevelUpEvent"), [(1,)])

    async def test_with_workers_the_parent_passes_sighup_on_to_each(self) -> None:
        port = await self.start("--workers", "2")
        await wait_until(lambda: self.proc.output.count(b"track listening on") >= 3, "two workers listening")

        self.declare(session(with_platform))
        await self.hup(b"SIGHUP: serving kinds", count=2)
        self.assertIn(b"SIGHUP: passed on to 2 workers", self.proc.output)
        codes = [(await self.post(port, n, Platform="ios"))[0] for n in range(20)]
        self.assertEqual(set(codes), {201})

        self.declare(session(lambda s: s["properties"]["SessionID"].update(maxLength=8)))
        await self.hup(b"SIGHUP: refused, the running kinds stay", count=2)
        codes = [(await self.post(port, n, Platform="ios", SessionID="z" * 40))[0] for n in range(20, 40)]
        self.assertEqual(set(codes), {201})
        self.assertEqual(execute(mysql_dsn(self), "SELECT COUNT(*) FROM SessionEvent WHERE Platform = 'ios'"),
                         [(40,)])


class StartTests(TestCase):
    timeout = 120

    async def test_a_breaking_change_at_start_exits_1_naming_it(self) -> None:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        events = os.path.join(cwd, "events.json")
        with open(events, "w") as f:
            json.dump({"kinds": {"session": session(lambda s: s["properties"]["Region"].update(maxLength=8))}}, f)
        dsn = dsn_text(sqlite_dsn(self))
        _, err, code = await getProcessOutputAndValue(
            TWISTD[0], [*TWISTD[1:], "--pidfile=", "-n", "track", "--http", "tcp:0", "--dsn", dsn,
                        "--events", events], env=child_env(), path=cwd)
        self.assertEqual(code, 1)
        self.assertIn(b"track: the event kinds cannot be served on sqlite://", err)
        self.assertIn(b"1 breaking change (nothing was changed):\n  kind 'session': property 'Region': "
                      b"maxLength lowered from 16 to 8", err)
