"""Suppression in a running collector, and a forget that runs during load
and during an outage: every other event stored exactly once, none of the
forgotten user's left."""

from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.privacy.forget import main
from track.run.build import build_service
from track.run.config import Standalone
from track.run.options import Options
from track.storage.prepare import prepare_database
from track.test.faultcase import wait_until as wait_for
from track.test.mariadb import MYSQL_SKIP
from track.test.privacy.test_forget import run
from track.test.process import wait_until
from track.test.support import client_pool, create_schema, execute, mysql_dsn_text, reset_mysql, serve

FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
JSON: dict[str | bytes, str | bytes] = {"Content-Type": "application/json"}
FORGOTTEN = 3
CLIENTS = 4
MAX_EVENTS = 20_000  # bound on the load loop
MAX_SECONDS = 90.0


class LiveTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    async def post(self, port: int, pid: int, message_id: str) -> int:
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/user/", headers=FORM,
                                   data=f"ProfileID={pid}&Region=eu&MessageID={message_id}".encode(),
                                   pool=client_pool(self))
        await response.content()
        code: int = response.code
        return code

    def stored(self) -> dict[str, int]:
        rows = execute(self.dsn, "SELECT MessageID, COUNT(*) FROM UserEvent GROUP BY MessageID")
        return {m: int(n) for m, n in rows}

    async def test_a_suppressed_id_is_answered_201_counted_and_not_stored(self) -> None:
        self.dsn = reset_mysql(self)
        create_schema(self.dsn)
        self.assertEqual(run("--dsn", mysql_dsn_text(self), "--profile-id", "7", "--suppress")[0], 0)
        port, _ = serve(self, self.dsn)  # reads the list at start
        self.assertEqual(await self.post(port, 7, "sup-7"), 201)
        self.assertEqual(await self.post(port, 8, "sup-8"), 201)
        body = b'{"events": [{"type": "user", "ProfileID": 7, "Region": "eu", "MessageID": "sup-b7"},' \
               b' {"type": "user", "ProfileID": 8, "Region": "eu", "MessageID": "sup-b8"}]}'
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/batch/", data=body, headers=JSON,
                                   pool=client_pool(self))
        self.assertEqual(response.code, 201)
        self.assertEqual((await response.json())["message_ids"], ["sup-b7", "sup-b8"])
        self.assertEqual(self.stored(), {"sup-8": 1, "sup-b8": 1})
        metrics = await (await treq.get(f"http://127.0.0.1:{port}/metrics", pool=client_pool(self))).text()
        self.assertIn('track_suppressed_events_total{type="user"} 2.0', metrics.splitlines())
        # Lifted: the running collector stores the ID's events again within 10 s.
        self.assertEqual(run("--dsn", mysql_dsn_text(self), "--profile-id", "7", "--unsuppress")[0], 0)
        sent: list[str] = []

        async def stored_again() -> bool:
            sent.append(f"again-{len(sent)}")
            self.assertEqual(await self.post(port, 7, sent[-1]), 201)
            return sent[-1] in self.stored()

        await wait_for(stored_again, "the lifted ID stored again", 15)

    async def test_forget_with_suppress_during_load(self) -> None:
        """Clients post events of five users while forget --suppress runs
        for one: afterwards none of that user's events is left (those
        stored before collectors read the list are swept again), and every
        other 201 is exactly one row."""
        self.dsn = reset_mysql(self)
        port, _ = serve(self, self.dsn)
        acked: list[str] = []
        answers: list[int] = []
        state = {"done": False, "n": 0}
        deadline = time.monotonic() + MAX_SECONDS

        async def client(c: int) -> None:
            while not state["done"] and state["n"] < MAX_EVENTS and time.monotonic() < deadline:
                n = state["n"] = state["n"] + 1
                pid = 1 + n % 5
                message_id = f"load-{pid}-{n}"
                code = await self.post(port, pid, message_id)
                answers.append(code)
                if code == 201:
                    acked.append(message_id)

        clients = DeferredList([Deferred.fromCoroutine(client(c)) for c in range(CLIENTS)])
        await wait_until(lambda: len(acked) >= 200, "load to begin")
        out = io.StringIO()

        def forget() -> int:
            with contextlib.redirect_stdout(out):
                return main(["--dsn", mysql_dsn_text(self), "--profile-id", str(FORGOTTEN), "--suppress"])

        code = await deferToThread(forget)
        forgot_at = len(acked)
        await wait_until(lambda: len(acked) >= forgot_at + 100, "load after the forget")
        state["done"] = True
        await clients
        self.assertEqual(code, 0)
        self.assertEqual(set(answers), {201})
        stored = self.stored()
        self.assertEqual([m for m in stored if m.startswith(f"load-{FORGOTTEN}-")], [])
        others = [m for m in acked if not m.startswith(f"load-{FORGOTTEN}-")]
        self.assertEqual([m for m in others if stored.get(m) != 1], [])
        self.assertEqual(len(stored), len(others))
        self.assertGreater(len(acked) - len(others), 0)  # the forgotten user did post meanwhile
        run("--dsn", mysql_dsn_text(self), "--profile-id", str(FORGOTTEN), "--unsuppress")

    async def start(self, dsn_text: str, spool: str) -> Any:
        options = Options()
        options.parseOptions(["--http", "tcp:0:interface=127.0.0.1", "--dsn", dsn_text, "--spool-dir", spool])
        service = build_service(options.config, Standalone(), reactor, prepare_database(options.config.dsn))
        service.privilegedStartService()
        service.startService()
        return service

    async def test_forget_in_the_spool_after_an_outage(self) -> None:
        """During an outage every event is spooled; the collector stops, the
        user is forgotten in its spool, and once it is back with the
        database the replay stores every other event exactly once."""
        self.dsn = reset_mysql(self)
        spool = os.path.abspath(self.mktemp())
        down = await self.start("mysql://root@127.0.0.1:1/track_unreachable", spool)
        acked = []
        for n in range(100):
            pid = 1 + n % 5
            if await self.post(down.port.getHost().port, pid, f"out-{pid}-{n}") == 201:
                acked.append(f"out-{pid}-{n}")
        self.assertEqual(len(acked), 100)
        await down.stopService()
        code, receipt, err = run("--dsn", mysql_dsn_text(self), "--profile-id", str(FORGOTTEN), "--spool-dir", spool)
        self.assertEqual(code, 0, err)
        assert receipt is not None
        self.assertEqual(receipt["spool"]["events"], 20)
        up = await self.start(mysql_dsn_text(self), spool)
        self.addCleanup(up.stopService)
        async def replayed() -> bool:
            health = await (await treq.get(f"http://127.0.0.1:{up.port.getHost().port}/healthz",
                                           pool=client_pool(self))).json()
            return bool(health["database"] == "up" and health["spool"]["events"] == 0)

        await wait_for(replayed, "the replay")
        stored = self.stored()
        self.assertEqual(stored, {m: 1 for m in acked if not m.startswith(f"out-{FORGOTTEN}-")})
