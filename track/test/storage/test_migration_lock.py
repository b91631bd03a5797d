"""Two instances migrating the same MariaDB: the second waits for the
first's migration lock as long as the first holds it, never past it (an
ALTER TABLE of a big table can take minutes; GET_LOCK's own wait is 60 s)."""

from __future__ import annotations

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.storage.dialect import dialect_for
from track.storage.mysql.dialect import MIGRATION_LOCK
from track.test.process import wait_until
from track.test.support import MYSQL_SKIP, logged, mysql_dsn


class MigrationLockTests(TestCase):
    skip = MYSQL_SKIP

    async def test_the_second_waits_while_the_first_holds_the_lock(self) -> None:
        dialect = dialect_for(mysql_dsn(self))
        first, second = dialect.connect(), dialect.connect()
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        lines = logged(self)
        dialect.lock(first.cursor())
        dialect.lock_wait_seconds = 1  # type: ignore[attr-defined]
        got: list[bool] = []

        def second_lock() -> None:
            dialect.lock(second.cursor())
            got.append(True)

        waiting = deferToThread(second_lock)
        await wait_until(lambda: len([line for line in lines if MIGRATION_LOCK in line]) >= 3,
                         "three waits for the lock", 30)
        self.assertEqual(got, [])  # past three of GET_LOCK's waits, still waiting
        self.assertIn("waiting for another instance's schema migration (it has held the lock "
                      f"'{MIGRATION_LOCK}' for 2 s and more)", lines)
        dialect.unlock(first.cursor())
        await waiting
        self.assertEqual(got, [True])
        dialect.unlock(second.cursor())
