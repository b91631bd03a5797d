"""pymysql as adbapi's DB-API module, with each INSERT its own transaction.

track writes a batch as one multi-row INSERT, which InnoDB commits
atomically and durably by itself in autocommit mode.  That saves the
separate COMMIT round trip, and with it a GIL hand-off on the pool thread,
per batch.  adbapi still calls commit()/rollback() after every interaction,
so here they cost nothing while autocommit is on.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql import *  # noqa: F403  (the DB-API module surface adbapi reads)
from pymysql import apilevel, paramstyle, threadsafety  # noqa: F401


class Connection(pymysql.connections.Connection):
    def commit(self) -> None:
        if not self.autocommit_mode:
            super().commit()

    def rollback(self) -> None:
        if not self.autocommit_mode:
            super().rollback()

    # For the few writes that span statements (a batch request across
    # tables): an explicit transaction, begun with begin().
    def commit_transaction(self) -> None:
        super().commit()

    def rollback_transaction(self) -> None:
        super().rollback()


def connect(*args: Any, **kwargs: Any) -> Connection:
    return Connection(*args, **kwargs)
