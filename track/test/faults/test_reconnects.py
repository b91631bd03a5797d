"""The database kills track's connections, again and again, while clients
post: every event is still stored, each reconnect is counted in
`track_db_reconnects_total`, and the log gets no traceback and no line per
reconnect (adbapi's "Rollback failed" included)."""

from __future__ import annotations

from typing import Any, cast

import treq
from twisted.internet import reactor
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.storage.dsn import DSN
from track.test.mariadb import MYSQL_SKIP
from track.test.support import execute, reset_mysql, serve

ROUNDS = 10
PATH = "/api/1.0/track/user/"
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}


def kill_connections(dsn: DSN) -> int:
    """KILL every other connection to the test database: track's pool."""
    ids = execute(dsn, "SELECT ID FROM information_schema.PROCESSLIST "
                       f"WHERE DB = '{dsn.database}' AND ID <> CONNECTION_ID()")
    for (pid,) in ids:
        try:
            execute(dsn, f"KILL CONNECTION {int(pid)}")
        except Exception:
            pass  # gone already
    return len(ids)


class KilledConnectionsTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 120

    async def test_killed_connections_are_reconnected_counted_and_not_logged_one_by_one(self) -> None:
        dsn = reset_mysql(self)
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        port, site = serve(self, dsn)
        pool = HTTPConnectionPool(reactor, persistent=False)
        killed = 0
        for n in range(ROUNDS):
            response = await treq.post(f"http://127.0.0.1:{port}{PATH}", data=f"ProfileID={n}&Region=eu".encode(),
                                       headers=FORM, pool=pool)
            await response.content()
            self.assertEqual(response.code, 201)
            killed += kill_connections(dsn)
        self.assertGreater(killed, 0)
        self.assertEqual(execute(dsn, "SELECT COUNT(*) FROM UserEvent"), [(ROUNDS,)])

        metrics = site.metrics.render().decode()
        (reconnects,) = [line for line in metrics.splitlines() if line.startswith("track_db_reconnects_total ")]
        self.assertGreaterEqual(float(reconnects.split()[1]), ROUNDS - 1)

        site.summaries.flush()
        lines = [formatEvent(e) or "" for e in events]
        self.assertEqual([e for e in events if e.get("log_failure") is not None or e.get("isError")], [])
        self.assertEqual([line for line in lines if "Rollback failed" in line or "Connection lost" in line], [])
        self.assertEqual(len([line for line in lines if "reconnected to the database" in line]), 1, lines)
