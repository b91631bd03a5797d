"""Two `twistd track` instances against one database, as behind a load
balancer: every acknowledged event is stored, none twice, even when clients
retry an event on the other instance."""

from __future__ import annotations

import os

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.mariadb import MYSQL_SKIP
from track.test.process import TwistdTrack
from track.test.support import execute, mysql_dsn_text, reset_mysql

EVENTS_PER_CLIENT = 150
CLIENTS = 6
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}


class ScaleOutTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    async def test_two_instances_store_everything_once(self) -> None:
        dsn = reset_mysql(self)
        bases = []
        for _n in range(2):
            cwd = os.path.abspath(self.mktemp())
            os.makedirs(cwd)
            proc = TwistdTrack(["--dsn", mysql_dsn_text(self), "--http", "tcp:0:interface=127.0.0.1"], cwd)
            self.addCleanup(proc.stop)
            bases.append(await proc.ready)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = CLIENTS
        self.addCleanup(pool.closeCachedConnections)
        acked: list[str] = []

        async def client(c: int) -> None:
            for i in range(EVENTS_PER_CLIENT):
                message_id = f"so-{c}-{i}"
                body = f"ProfileID={i}&Region=eu&MessageID={message_id}".encode()
                # Every event goes to one instance, and every third is sent
                # again to the other, as a client retrying after a timeout.
                targets = [bases[(c + i) % 2]] + ([bases[(c + i + 1) % 2]] if i % 3 == 0 else [])
                for base in targets:
                    response = await treq.post(f"{base}/api/1.0/track/user/", data=body, pool=pool, headers=FORM)
                    await response.content()
                    self.assertEqual(response.code, 201)
                acked.append(message_id)

        await DeferredList([Deferred.fromCoroutine(client(c)) for c in range(CLIENTS)], fireOnOneErrback=True,
                           consumeErrors=True)
        rows = execute(dsn, "SELECT MessageID, COUNT(*) FROM UserEvent GROUP BY MessageID")
        self.assertEqual(len(acked), CLIENTS * EVENTS_PER_CLIENT)
        self.assertEqual(sorted(m for m, _ in rows), sorted(acked))
        self.assertEqual([m for m, n in rows if n > 1], [])
