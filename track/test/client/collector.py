"""A real `twistd track` on MariaDB for the client's end-to-end tests."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from track.storage.dsn import DSN
from track.test.process import TwistdTrack
from track.test.support import execute, mysql_dsn_text, reset_mysql

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _MixedInto = TestCase
else:
    _MixedInto = object


class CollectorMixin(_MixedInto):
    """Starts (and restarts, on the same port and spool) a real collector."""

    dsn: DSN

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)

    async def start_collector(self, port: int = 0) -> str:
        """The base URL of a twistd track listening on `port` (0: any)."""
        proc = TwistdTrack(["--dsn", mysql_dsn_text(self), "--http", f"tcp:{port}:interface=127.0.0.1"], self.cwd)
        self.addCleanup(proc.stop)
        self.proc = proc
        base: str = await proc.ready
        return base

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return execute(self.dsn, sql)

    def message_ids(self, table: str) -> list[str]:
        """Every MessageID stored in `table`, duplicates included, sorted."""
        return sorted(r[0] for r in self.rows(f"SELECT MessageID FROM {table}"))
