"""SIGHUP's refusals that need no database server: a file that does not
parse, or a database that is away, leave the running kinds as they are;
one that is there is compared, whatever the writer counts it as (after a
breaking change found on its return, down)."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from track.run.reload import Reload
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN, parse_dsn
from track.test.mariadb import free_port
from track.test.support import logged, sqlite_dsn


class RefusalTests(TestCase):
    def setUp(self) -> None:
        self.served: list[Any] = []
        self.lines: list[str] = logged(self)

    def reload(self, events: str | None, dsn: DSN | None = None) -> Reload:
        dsn = dsn or sqlite_dsn(self)
        return Reload(events, dsn, dialect_for(dsn), reactor, lambda _, kinds: self.served.append(kinds))

    def test_a_file_that_does_not_parse_is_refused(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('{"kinds": {"level_up": {"schema": {"properties": {"A": {"type": "integer", "minLength": 1}}}}}}')
        self.assertIs(self.successResultOf(self.reload(path).reload()), False)
        self.assertEqual(self.served, [])
        self.assertIn(f"SIGHUP: refused, the running kinds stay: {path}: kind 'level_up', property 'A': keyword "
                      "'minLength' is not supported (supported: $comment, default, description, examples, maximum, "
                      "minimum, title, type, x-track-message)", self.lines)

    async def test_a_database_that_is_away_is_refused(self) -> None:
        nothing_listens = parse_dsn(f"mysql://root@127.0.0.1:{free_port()}/track?connect_timeout=2")
        self.assertIs(await self.reload(None, dsn=nothing_listens).reload(), False)
        self.assertEqual(self.served, [])
        (line,) = self.lines[1:]
        self.assertTrue(line.startswith(
            "SIGHUP: refused, the running kinds stay: the database is unavailable, so the original kinds cannot be "
            "compared with it; send SIGHUP again once it is back (mysql://root@127.0.0.1:"), line)

    async def test_a_file_that_fits_is_served(self) -> None:
        served = await self.reload(None).reload()
        self.assertIs(served, True)
        (kinds,) = self.served
        self.assertEqual(list(kinds), ["session", "user", "item", "purchase"])
