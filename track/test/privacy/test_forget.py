"""`python -m track forget`: the rows, the spool, the dead letters, the
receipt, the lock, and suppression, on MariaDB (and SQLite)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS, parse_event
from track.privacy.forget import delete_profile, main
from track.privacy.spoolforget import forget_in_spool, matches
from track.spool.deadletters import DeadLetters, entry
from track.spool.lock import DirectoryLock
from track.spool.records import encode, parse_segment
from track.spool.segments import Spool, replayed_records
from track.storage.dialect import dialect_for
from track.test.mariadb import MYSQL_SKIP
from track.test.process import child_env
from track.test.support import create_schema, dsn_text, execute, mysql_dsn_text, reset_mysql, sqlite_dsn

CREATED = datetime(2026, 12, 7, 12, 0, 0)


def row(kind: str, profile_id: int, message_id: str) -> tuple[Any, ...]:
    fields: dict[str, object] = {"ProfileID": profile_id, "Region": "eu", "MessageID": message_id}
    if kind == "item":
        fields.update(ItemName="sword", ItemType="weapon", IsUGC=False)
    if kind == "session":
        fields.update(SessionID="s", RemoteIP="203.0.113.1", SessionType="login")
    if kind == "purchase":
        fields.update(Currency="EUR", GrossAmount="1.00", NetAmount="0.80", PaymentProvider="card",
                      Product="gems")
    return parse_event(KINDS[kind], fields, "198.51.100.1", CREATED)


def insert(dsn: Any, name: str, rows: list[tuple[Any, ...]]) -> None:
    dialect = dialect_for(dsn)
    kind = KINDS[name]
    columns = ", ".join(kind.columns)
    marks = ", ".join([dialect.placeholder] * len(kind.columns))
    conn = dialect.connect()
    try:
        cursor = conn.cursor()
        cursor.executemany(f"INSERT INTO {kind.table} ({columns}) VALUES ({marks})", [dialect.adapt(r) for r in rows])
        conn.commit()
    finally:
        conn.close()


def run(*argv: str) -> tuple[int, dict[str, Any] | None, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv), sleep=lambda seconds: None)
    return code, json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


class DatabaseTests(TestCase):
    def fill(self, dsn: Any) -> None:
        create_schema(dsn)
        for kind in KINDS:
            insert(dsn, kind, [row(kind, pid, f"{kind}-{pid}-{n}") for pid in (7, 8) for n in range(5)])

    def check(self, dsn: Any, text: str) -> None:
        self.fill(dsn)
        code, receipt, _ = run("--dsn", text, "--profile-id", "7")
        self.assertEqual(code, 0)
        assert receipt is not None
        self.assertEqual(receipt["tables"], {e.table: 5 for e in KINDS.values()})
        self.assertEqual(receipt["profile_id"], 7)
        self.assertIn("time", receipt)
        for kind in KINDS.values():
            self.assertEqual(execute(dsn, f"SELECT ProfileID, COUNT(*) FROM {kind.table} GROUP BY ProfileID"),
                             [(8, 5)], kind.table)

    def test_mariadb_every_table(self) -> None:
        if MYSQL_SKIP:
            self.skipTest(MYSQL_SKIP)
        self.check(reset_mysql(self), mysql_dsn_text(self))

    def test_sqlite_every_table(self) -> None:
        dsn = sqlite_dsn(self)
        self.check(dsn, dsn_text(dsn))

    def test_batches_delete_every_row_and_nothing_else(self) -> None:
        if MYSQL_SKIP:
            self.skipTest(MYSQL_SKIP)
        dsn = reset_mysql(self)
        create_schema(dsn)
        insert(dsn, "user", [row("user", 7 if n % 3 else 8, f"b-{n}") for n in range(50)])
        dialect = dialect_for(dsn)
        conn = dialect.connect()
        try:
            self.assertEqual(delete_profile(conn, dialect, "UserEvent", 7, batch=4), 33)
        finally:
            conn.close()
        self.assertEqual(execute(dsn, "SELECT ProfileID, COUNT(*) FROM UserEvent GROUP BY ProfileID"), [(8, 17)])

    def test_suppress_and_unsuppress(self) -> None:
        dsn = sqlite_dsn(self)
        create_schema(dsn)
        code, receipt, _ = run("--dsn", dsn_text(dsn), "--profile-id", "7", "--suppress")
        self.assertEqual((code, receipt and receipt["suppressed"]), (0, True))
        self.assertEqual(execute(dsn, "SELECT ProfileID FROM TrackSuppression"), [(7,)])
        code, receipt, _ = run("--dsn", dsn_text(dsn), "--profile-id", "7", "--unsuppress")
        self.assertEqual((code, receipt and receipt["unsuppressed"]), (0, True))
        self.assertEqual(execute(dsn, "SELECT ProfileID FROM TrackSuppression"), [])
        self.assertNotIn("tables", receipt or {})  # lifting deletes nothing

    def test_a_bad_dsn_is_exit_2_without_the_password(self) -> None:
        code, receipt, err = run("--dsn", "postgres://u:s3cret@h/db", "--profile-id", "7")
        self.assertEqual((code, receipt), (2, None))
        self.assertNotIn("s3cret", err)

    def test_the_command_line_as_the_readme_gives_it(self) -> None:
        dsn = sqlite_dsn(self)
        self.fill(dsn)
        done = subprocess.run([sys.executable, "-m", "track", "forget", "--dsn", dsn_text(dsn), "--profile-id", "8"],
                              capture_output=True, text=True, env=child_env(), timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["tables"]["UserEvent"], 5)


class SpoolTests(TestCase):
    def make_spool(self, root: str) -> None:
        """Two segments with events of IDs 7 and 8 (the first half of the
        first one already replayed) and dead letters of both."""
        spool = Spool(root, 10**7, reactor)
        spool.open()
        spool.close()
        user = KINDS["user"]
        first = [encode(user, row("user", 7 if n % 2 else 8, f"s1-{n}")) for n in range(10)]
        second = [encode(user, row("user", 7 if n % 2 else 8, f"s2-{n}")) for n in range(6)]
        for name, records in (("000000000001.spool", first), ("000000000002.spool", second)):
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"track-spool 2\n" + b"".join(records))
        with open(os.path.join(root, "000000000001.replayed"), "wb") as f:
            f.write(b"%020d\n" % 4)  # records 0-3 replayed: two of them are ID 7's
        DeadLetters(root).append([entry(user, row("user", pid, f"dl-{pid}"), "refused") for pid in (7, 8, 7)])

    def message_ids(self, root: str) -> list[str]:
        found = []
        for name in sorted(os.listdir(root)):
            if name.endswith(".spool"):
                with open(os.path.join(root, name), "rb") as f:
                    found += [json.loads(p)["columns"]["MessageID"] for p in parse_segment(f.read()).payloads]
        return found

    def test_events_and_dead_letters_of_the_id_go_the_rest_stay(self) -> None:
        root = os.path.abspath(self.mktemp())
        self.make_spool(root)
        removed = forget_in_spool(root, 7)
        self.assertEqual((removed.spool_events, removed.segments_rewritten, removed.dead_letters), (8, 2, 2))
        self.assertEqual(self.message_ids(root), [f"s1-{n}" for n in range(0, 10, 2)] + ["s2-0", "s2-2", "s2-4"])
        # Of the four replayed records two were ID 7's: the two left come first.
        self.assertEqual(replayed_records(os.path.join(root, "000000000001.spool")), 2)
        with open(os.path.join(root, "dead-letter", "events.jsonl")) as f:
            self.assertEqual([json.loads(line)["MessageID"] for line in f], ["dl-8"])
        spool = Spool(root, 10**7, reactor)  # what the collector finds at its next start
        spool.open()
        spool.close()
        self.assertEqual(spool.events, 3 + 3)

    def test_a_worker_spool_and_a_crashed_rewrite(self) -> None:
        """--workers keeps a spool per worker; a forget that crashed before
        its rename left a temporary file, which the next one removes."""
        root = os.path.abspath(self.mktemp())
        worker = os.path.join(root, "worker-0")
        os.makedirs(worker)
        self.make_spool(worker)
        with open(os.path.join(worker, "000000000002.spool.forget"), "wb") as f:
            f.write(b"half a rewrite")
        removed = forget_in_spool(root, 7)
        self.assertEqual((removed.spool_events, len(removed.directories)), (8, 2))
        self.assertFalse(os.path.exists(os.path.join(worker, "000000000002.spool.forget")))
        self.assertEqual(len(self.message_ids(worker)), 8)

    def test_a_spool_held_by_a_collector_is_refused_untouched(self) -> None:
        root = os.path.abspath(self.mktemp())
        self.make_spool(root)
        before = self.message_ids(root)
        held = DirectoryLock(root).acquire()  # as a running collector holds it
        self.addCleanup(held.release)
        dsn = sqlite_dsn(self)
        create_schema(dsn)
        code, receipt, err = run("--dsn", dsn_text(dsn), "--profile-id", "7", "--spool-dir", root)
        self.assertEqual((code, receipt), (75, None))
        self.assertIn(f"the spool directory {root} is in use by a running collector "
                      f"(spool directory {root} is in use by process {os.getpid()})", err)
        self.assertEqual(self.message_ids(root), before)
        held.release()
        code, receipt, _ = run("--dsn", dsn_text(dsn), "--profile-id", "7", "--spool-dir", root)
        self.assertEqual(code, 0)
        assert receipt is not None
        self.assertEqual((receipt["spool"]["events"], receipt["dead_letters"]), (8, 2))

    def test_format_1_records_match_too(self) -> None:
        self.assertTrue(matches(json.dumps(["user", [7, "eu", None, None, "m", "", "t"]]).encode(), 7))
        self.assertFalse(matches(json.dumps(["user", [8, "eu", None, None, "m", "", "t"]]).encode(), 7))
        self.assertFalse(matches(b"not json", 7))

    async def test_from_a_thread_as_the_load_test_runs_it(self) -> None:
        root = os.path.abspath(self.mktemp())
        self.make_spool(root)
        removed = await deferToThread(forget_in_spool, root, 8)
        self.assertEqual(removed.spool_events, 8)
