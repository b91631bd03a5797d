"""Splitting a refused multi-row INSERT (MySQL's way, `Store._split`) when
the database goes away midway: every row not yet committed is Unavailable,
so the writer spools it; none is taken for stored.  The dialect is SQLite
with MySQL's single-statement batches and a script of what each INSERT meets."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS, parse_event
from track.pipeline.writer import Writer
from track.storage.sqlite import SQLiteDialect
from track.storage.store import Store
from track.test.support import create_schema, execute, logged, open_spool, spooled_rows, sqlite_dsn
from track.types import Statement, Unavailable

SESSION = KINDS["session"]


def row(message_id: str) -> Any:
    return parse_event(SESSION, {"Region": "eu", "SessionID": message_id, "RemoteIP": "203.0.113.7",
                                 "SessionType": "login", "MessageID": message_id}, "", datetime(2026, 12, 7))


class ScriptedDialect(SQLiteDialect):
    """SQLite, but each INSERT a whole statement as on MySQL (split in halves
    when refused), and the first INSERTs meet what `script` says (None: it
    goes through)."""

    single_statement_batches = True

    def __init__(self, dsn: Any, script: list[Exception | None]) -> None:
        super().__init__(dsn)
        self.script = script
        self.inserts: list[list[str]] = []

    def insert_rows(self, cursor: Any, stmt: Statement, rows: Sequence[Sequence[Any]]) -> None:
        self.inserts.append([r[SESSION.message_id_index] for r in rows])
        if self.script:
            meets = self.script.pop(0)
            if meets is not None:
                raise meets
        super().insert_rows(cursor, stmt, rows)


class SplitOutageTests(TestCase):
    async def test_an_outage_while_splitting_leaves_no_row_taken_for_stored(self) -> None:
        dsn = sqlite_dsn(self)
        create_schema(dsn)
        dialect = ScriptedDialect(dsn, [
            sqlite3.IntegrityError("CHECK constraint failed: s-1"),  # the whole INSERT, for one row
            sqlite3.OperationalError("database is locked"),  # its left half: the database is gone
        ])
        store = Store(dialect)
        self.addCleanup(store.close)
        spool = open_spool(self, self.mktemp())
        writer = Writer(store, spool, Clock(), dict(KINDS))
        self.addCleanup(writer.stop)
        ids = ["s-0", "s-1", "s-2", "s-3"]

        outcome = await store.insert(SESSION, [row(m) for m in ids])
        self.assertEqual(dialect.inserts, [ids, ["s-0", "s-1"]])
        self.assertEqual([type(o) for o in outcome or []], [Unavailable] * 4,
                         "rows never tried (the right half) counted as stored")

        dialect.script = [sqlite3.IntegrityError("CHECK constraint failed: s-1"),
                          sqlite3.OperationalError("database is locked")]
        answers = await writer.insert(SESSION, [row(m) for m in ids])
        self.assertEqual(answers, [None] * 4)  # every request gets its 201 ...
        spooled = await Deferred.fromCoroutine(spooled_rows(spool))
        self.assertEqual([r[SESSION.message_id_index] for r in spooled], ids)  # ... because it is spooled
        self.assertEqual(execute(dsn, "SELECT COUNT(*) FROM SessionEvent"), [(0,)])
        self.assertFalse(writer.up)

    async def test_an_outage_after_a_half_was_stored_keeps_that_half_and_not_the_rest(self) -> None:
        dsn = sqlite_dsn(self)
        create_schema(dsn)
        dialect = ScriptedDialect(dsn, [
            sqlite3.IntegrityError("CHECK constraint failed: s-3"),  # the whole INSERT, for one row
            None,  # its left half is stored
            sqlite3.OperationalError("database is locked"),  # its right half: the database is gone
        ])
        store = Store(dialect)
        self.addCleanup(store.close)
        lines = logged(self, "track.store")
        ids = ["s-0", "s-1", "s-2", "s-3"]
        outcome = await store.insert(SESSION, [row(m) for m in ids])
        self.assertEqual(dialect.inserts, [ids, ["s-0", "s-1"], ["s-2", "s-3"]])
        self.assertEqual([type(o) for o in outcome or []], [type(None)] * 2 + [Unavailable] * 2)
        self.assertEqual(str(outcome[2]), "OperationalError('database is locked')")  # type: ignore[index]
        self.assertEqual(execute(dsn, "SELECT MessageID FROM SessionEvent ORDER BY MessageID"), [("s-0",), ("s-1",)])
        self.assertEqual(lines, ["could not write: OperationalError('database is locked')"])
