"""A multi-host DSN whose hosts are all down at start: track starts on its
spool, and once a host appears it migrates there (through the host the
probe found, not the first of the DSN) and replays.  A private mariadbd
(track.test.faultcase) behind a port nobody listens on."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from track.test import faultcase
from track.test.faultcase import wait_until
from track.test.mariadb import free_port


class MultiHostStartTests(faultcase.FaultCase):
    async def test_start_with_no_host_up_then_the_second_appears(self) -> None:
        refused = f"127.0.0.1:{free_port()}"
        dsn = f"mysql://root@{refused},127.0.0.1:{self.db.port}/track"
        await self.stop_db()
        await self.start_track(dsn=dsn)
        load = self.load()
        await load.wait_for_acks(100)
        body = await self.health()
        self.assertEqual((body["database"], body["spool"]["events"] >= 100), ("down", True))

        async def both_down() -> bool:  # once the probe has been round the hosts
            return [h["state"] for h in (await self.health())["database_hosts"]] == ["down", "down"]

        await wait_until(lambda: Deferred.fromCoroutine(both_down()), "the probe to find both hosts down")
        await self.start_db()
        await wait_until(self.drained, "migration and replay once the second host appears")
        await load.wait_for_acks(len(load.acked) + 50)
        await load.stop()
        self.check_stored_once(load, allow={201})
        body = await self.health()
        self.assertEqual((body["database"], body["database_host"]), ("up", f"127.0.0.1:{self.db.port}"))
        self.assertEqual([h["state"] for h in body["database_hosts"]], ["down", "in use"])
