"""`python -m track.client import URL FILE...` against a real collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.client.importer import message_id_for
from track.test.client.collector import CollectorMixin
from track.test.client.fakecollector import DeadPort
from track.test.process import child_env
from track.test.support import MYSQL_SKIP

LINES = [
    '{"type": "user", "ProfileID": 1, "Region": "eu"}',
    "",
    '{"type": "user", "ProfileID": "one", "Region": "eu", "Colour": "red"}',
    '{"type": "purchase", "ProfileID": 2, "Region": "eu", "Currency": "EUR", "GrossAmount": 12345678901234.5678,'
    ' "NetAmount": 0.5, "PaymentProvider": "card", "Product": "gems", "MessageID": "mine"}',
    "{not json",
    '{"type": "user", "ProfileID": 1, "Region": "eu"}',  # the same as line 1, another event
    '{"type": "session", "Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1", "SessionType": "t"}',
]


def run_import(*args: str, stdin: str | None = None, cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "track.client", "import", *args], input=stdin, env=child_env(),
                          capture_output=True, text=True, timeout=120, cwd=cwd)


class ImportCommandTests(CollectorMixin, TestCase):
    skip = MYSQL_SKIP

    def write(self, name: str, lines: list[str]) -> str:
        path = os.path.join(self.cwd, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def stored(self) -> dict[str, list[Any]]:
        return {table: self.message_ids(table) for table in ("UserEvent", "PurchaseEvent", "SessionEvent")}

    async def test_imports_good_lines_writes_refused_ones_and_stores_nothing_twice_when_rerun(self) -> None:
        base = await self.start_collector()
        path = self.write("events.ndjson", LINES)
        result = await deferToThread(run_import, base, path, cwd=self.cwd)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(f"{path}: 7 lines, 4 events stored (or stored before), 2 refused (see {path}.rejected.ndjson)",
                      result.stdout)
        with open(path + ".rejected.ndjson", encoding="utf-8") as f:
            rejected = [json.loads(line) for line in f]
        self.assertEqual(rejected, [
            {"line": 3, "reasons": {"ProfileID": "must be an integer", "Colour": "unknown field"}, "text": LINES[2]},
            {"line": 5, "reasons": {"line": rejected[1]["reasons"]["line"]}, "text": "{not json"},
        ])
        self.assertTrue(rejected[1]["reasons"]["line"].startswith("malformed JSON"))
        real = "events.ndjson"  # the file's name, not its path
        expected = {
            "UserEvent": sorted([message_id_for(real, 1, LINES[0]), message_id_for(real, 6, LINES[5])]),
            "PurchaseEvent": ["mine"],
            "SessionEvent": [message_id_for(real, 7, LINES[6])],
        }
        self.assertEqual(self.stored(), expected)
        self.assertEqual([str(v) for v in self.rows("SELECT GrossAmount FROM PurchaseEvent")[0]],
                         ["12345678901234.5678"])
        again = await deferToThread(run_import, base, path, cwd=self.cwd)
        self.assertEqual(again.returncode, 1, again.stderr)
        self.assertEqual(self.stored(), expected)

    async def test_the_same_file_from_another_directory_and_empty_message_ids_store_nothing_twice(self) -> None:
        """Only the file's name goes into a line's MessageID, and an empty
        MessageID is given one too (the collector would make up a new one
        on every run)."""
        base = await self.start_collector()
        lines = [LINES[0], '{"type": "user", "ProfileID": 5, "Region": "eu", "MessageID": ""}']
        first = self.write("moved.ndjson", lines)
        elsewhere = os.path.join(self.cwd, "elsewhere")
        os.makedirs(elsewhere)
        os.rename(first, os.path.join(elsewhere, "moved.ndjson"))
        second = self.write("moved.ndjson", lines)
        for path in (os.path.join(elsewhere, "moved.ndjson"), second, second):
            result = await deferToThread(run_import, base, path, cwd=self.cwd)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.stored()["UserEvent"],
                         sorted(message_id_for("moved.ndjson", n, line) for n, line in enumerate(lines, 1)))

    async def test_standard_input_and_a_clean_file_exit_0(self) -> None:
        base = await self.start_collector()
        result = await deferToThread(run_import, base, "-", "--source", "day1", stdin=LINES[0] + "\n" + LINES[6] + "\n",
                                     cwd=self.cwd)
        self.assertEqual((result.returncode, result.stdout),
                         (0, "-: 2 lines, 2 events stored (or stored before), 0 refused\n"), result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.cwd, "stdin.rejected.ndjson")))
        self.assertEqual(self.stored(), {"UserEvent": [message_id_for("day1", 1, LINES[0])], "PurchaseEvent": [],
                                         "SessionEvent": [message_id_for("day1", 2, LINES[6])]})

    async def test_two_different_stdin_imports_store_every_line(self) -> None:
        """The same text at the same line number of two streams: two events
        (their MessageIDs derive from --source), each stored once."""
        base = await self.start_collector()
        day1 = LINES[0] + "\n" + '{"type": "user", "ProfileID": 7, "Region": "eu"}\n'
        day2 = LINES[0] + "\n" + '{"type": "user", "ProfileID": 8, "Region": "eu"}\n'
        for name, text in (("day1.ndjson.gz", day1), ("day2.ndjson.gz", day2), ("day1.ndjson.gz", day1)):
            result = await deferToThread(run_import, base, "-", "--source", name, stdin=text, cwd=self.cwd)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.rows("SELECT COUNT(*), COUNT(DISTINCT MessageID) FROM UserEvent")[0], (4, 4))
        self.assertEqual(sorted(r[0] for r in self.rows("SELECT ProfileID FROM UserEvent")), [1, 1, 7, 8])

    async def test_standard_input_without_source_is_a_usage_error(self) -> None:
        result = await deferToThread(run_import, "http://127.0.0.1:9", "-", stdin=LINES[0], cwd=self.cwd)
        self.assertEqual(result.returncode, 2)
        self.assertIn("--source", result.stderr)

    async def test_an_unreadable_file_is_reported_and_the_others_imported(self) -> None:
        base = await self.start_collector()
        good = self.write("good.ndjson", [LINES[0]])
        other = self.write("other.ndjson", [LINES[6]])
        missing = os.path.join(self.cwd, "nosuch.ndjson")
        result = await deferToThread(run_import, base, missing, good, self.cwd, other, cwd=self.cwd)
        self.assertEqual(result.returncode, 2, result.stderr)  # the worst of all files
        self.assertIn(f"cannot read {missing}: No such file or directory; skipped", result.stderr)
        self.assertIn(f"cannot read {self.cwd}: Is a directory", result.stderr)
        self.assertIn(f"{good}: 1 lines, 1 events stored", result.stdout)
        self.assertEqual(self.stored()["UserEvent"], [message_id_for("good.ndjson", 1, LINES[0])])
        self.assertEqual(self.stored()["SessionEvent"], [message_id_for("other.ndjson", 1, LINES[6])])

    async def test_a_utf8_byte_order_mark_is_accepted(self) -> None:
        base = await self.start_collector()
        path = os.path.join(self.cwd, "bom.ndjson")
        with open(path, "w", encoding="utf-8-sig") as f:
            f.write(LINES[0] + "\n")
        result = await deferToThread(run_import, base, path, cwd=self.cwd)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(self.stored()["UserEvent"], [message_id_for("bom.ndjson", 1, LINES[0])])

    async def test_created_or_timestamp_of_a_line_is_the_events_time(self) -> None:
        base = await self.start_collector()
        day = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=3)
        lines = [
            f'{{"type": "user", "ProfileID": 1, "Region": "eu", "Created": "{day:%Y-%m-%d %H:%M:%S}"}}',
            f'{{"type": "user", "ProfileID": 2, "Region": "eu", "Created": "{day:%Y-%m-%dT%H:%M:%S}+02:00"}}',
            f'{{"type": "user", "ProfileID": 3, "Region": "eu", "Created": "2000-01-01 00:00:00",'
            f' "Timestamp": "{day:%Y-%m-%dT%H:%M:%S}.250Z"}}',
        ]
        result = await deferToThread(run_import, base, self.write("old.ndjson", lines), cwd=self.cwd)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        stored = dict(self.rows("SELECT ProfileID, Created FROM UserEvent"))
        # The original's Created is a TIMESTAMP of whole seconds: line 3's .250 goes.
        expected = {1: day, 2: day - timedelta(hours=2), 3: day}
        # Exactly the line's time: the import sends no SentAt, so the trip and
        # this machine's clock do not move it.
        self.assertEqual(stored, expected)

    async def test_events_the_collector_refuses_are_written_with_their_line(self) -> None:
        """A Timestamp older than --max-event-age: only the collector knows its window."""
        base = await self.start_collector()
        path = self.write("old.ndjson", [LINES[0], '{"type": "user", "ProfileID": 3, "Region": "eu", '
                                                   '"Timestamp": "2000-01-01T00:00:00Z"}'])
        result = await deferToThread(run_import, base, path, cwd=self.cwd)
        self.assertEqual(result.returncode, 1, result.stderr)
        with open(path + ".rejected.ndjson", encoding="utf-8") as f:
            rejected = [json.loads(line) for line in f]
        self.assertEqual([(r["line"], set(r["reasons"]["fields"]), r["reasons"]["status"]) for r in rejected],
                         [(2, {"Timestamp"}, 400)])
        self.assertEqual(self.stored()["UserEvent"], [message_id_for("old.ndjson", 1, LINES[0])])


def run_on_a_terminal(args: list[str], cwd: str) -> tuple[int, bytes]:
    """Run with standard error on a pseudo-terminal: (exit status, what it drew)."""
    master, slave = os.openpty()
    try:
        child = subprocess.Popen(args, env={**child_env(), "COLUMNS": "160"}, cwd=cwd,
                                 stdout=subprocess.DEVNULL, stderr=slave)
    finally:
        os.close(slave)
    drawn = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    return child.wait(timeout=120), drawn


class ProgressBarTests(CollectorMixin, TestCase):
    skip = MYSQL_SKIP

    async def test_a_terminal_gets_a_progress_bar(self) -> None:
        base = await self.start_collector()
        path = os.path.join(self.cwd, "bar.ndjson")
        with open(path, "w", encoding="utf-8") as f:
            f.write(LINES[0] + "\n")
        status, drawn = await deferToThread(
            run_on_a_terminal, [sys.executable, "-m", "track.client", "import", base, path], self.cwd)
        self.assertEqual(status, 0, drawn)
        self.assertIn(b"bar.ndjson", drawn)
        self.assertIn(b"1 stored", drawn)  # events the collector acknowledged, not bytes read

    async def test_while_the_collector_is_down_the_bar_says_so_and_logs_print_above_it(self) -> None:
        dead = DeadPort()
        path = os.path.join(self.cwd, "later.ndjson")
        with open(path, "w", encoding="utf-8") as f:
            f.write(LINES[0] + "\n")
        master, slave = os.openpty()
        child = subprocess.Popen([sys.executable, "-m", "track.client", "import", dead.url, path],
                                 env={**child_env(), "COLUMNS": "200"}, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                 stderr=slave)
        os.close(slave)
        self.addCleanup(child.kill)
        drawn = bytearray()

        def read_until(what: bytes) -> None:
            while what not in drawn:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    return
                if not chunk:
                    return
                drawn.extend(chunk)

        try:
            await deferToThread(read_until, b"waiting for the collector: [Errno 111] Connection refused")
            self.assertIn(b"0 stored", drawn)
            dead.release()
            await self.start_collector(dead.port)
            await deferToThread(read_until, b"1 stored")
            self.assertEqual(await deferToThread(child.wait, 60), 0)
            await deferToThread(read_until, b"\xff")  # the rest, to the end
        finally:
            os.close(master)
        # Each warning is a line of its own, started after the bar's line was cleared: never inside it.
        warnings = [line for line in bytes(drawn).split(b"\n") if b"events not sent" in line]
        self.assertTrue(warnings)
        for line in warnings:
            self.assertNotIn(b"stored", line.split(b"track client:")[0].split(b"\x1b[2K")[-1])
        self.assertEqual(self.message_ids("UserEvent"), [message_id_for("later.ndjson", 1, LINES[0])])
