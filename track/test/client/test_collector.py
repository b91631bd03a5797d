"""The client against a real `twistd track` on MariaDB: down at first,
killed with SIGKILL mid-stream, a client process killed, a refused event.
Each test asserts the rows: every event tracked is stored exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import IO, Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from track.client import Client, InvalidEventError, QueueFull
from track.client.importer import message_id_for
from track.test.client.collector import CollectorMixin
from track.test.client.fakecollector import DeadPort
from track.test.process import child_env, port_of, wait_until
from track.test.support import MYSQL_SKIP, ORIGINAL_MYSQL_DDL, create_schema, execute

WAIT = 60.0


def user(n: int) -> dict[str, Any]:
    return {"ProfileID": n, "Region": "eu", "Referrer": f"r{n}"}


def read_until(stream: IO[str], last: str) -> list[str]:
    """The lines a child prints before `last`; fails if it exits first."""
    lines: list[str] = []
    for line in stream:
        if line == last:
            return lines
        lines.append(line.strip())
    raise AssertionError(f"the child exited after {len(lines)} lines")


class Producer:
    """Tracks user events from a thread, about one a millisecond, until stopped."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ids: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        n = 0
        while not self.stopped.wait(0.001):
            try:
                self.ids.append(self.client.track("user", user(n)))
            except QueueFull:
                continue
            n += 1

    def stop(self) -> list[str]:
        self.stopped.set()
        self.thread.join()
        return self.ids


class ClientCollectorTests(CollectorMixin, TestCase):
    skip = MYSQL_SKIP

    def client(self, url: str, **kwargs: Any) -> Client:
        client = Client(url, **kwargs)
        self.addCleanup(client.close, 5)
        return client

    async def test_events_tracked_while_the_collector_is_down_arrive_once_it_is_up(self) -> None:
        dead = DeadPort()
        client = self.client(dead.url, flush_interval=0.05)
        ids = [client.track("user", user(n)) for n in range(300)]
        self.assertFalse(await deferToThread(client.flush, 1.0))  # refused connections meanwhile
        self.assertEqual(client.pending, 300)
        dead.release()
        await self.start_collector(dead.port)
        self.assertTrue(await deferToThread(client.flush, WAIT))
        self.assertEqual(self.message_ids("UserEvent"), sorted(ids))

    async def test_a_collector_killed_mid_stream_and_restarted_loses_and_doubles_nothing(self) -> None:
        base = await self.start_collector()
        client = self.client(base, batch_size=50, flush_interval=0.01)
        producer = Producer(client)
        self.addCleanup(producer.stop)
        await wait_until(lambda: self.rows("SELECT COUNT(*) FROM UserEvent")[0][0] >= 300, "events stored")
        first = self.proc
        first.signal("KILL")
        await first.wait()
        at_kill = self.rows("SELECT COUNT(*) FROM UserEvent")[0][0]
        await self.start_collector(port_of(base))
        await wait_until(lambda: self.rows("SELECT COUNT(*) FROM UserEvent")[0][0] >= at_kill + 300,
                         "events stored after the restart")
        ids = producer.stop()
        self.assertTrue(await deferToThread(client.flush, WAIT))
        self.assertEqual(self.message_ids("UserEvent"), sorted(ids))

    async def test_a_queue_path_outlives_a_client_process_killed_with_sigkill(self) -> None:
        path = self.mktemp() + ".sqlite3"
        dead = DeadPort()
        code = ("import sys, time\nfrom track.client import Client\n"
                "c = Client(sys.argv[1], queue_path=sys.argv[2], flush_interval=0.01)\n"
                "for n in range(500):\n"
                "    print(c.track('user', {'ProfileID': n, 'Region': 'eu'}), flush=True)\n"
                "print('tracked', flush=True)\n"
                "time.sleep(600)\n")
        child = subprocess.Popen([sys.executable, "-c", code, dead.url, path], env=child_env(),
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        out = child.stdout
        assert out is not None
        lines = await deferToThread(read_until, out, "tracked\n")
        child.kill()  # SIGKILL: no atexit, no close
        out.close()
        self.assertEqual(len(lines), 500)
        dead.release()
        base = await self.start_collector(dead.port)
        client = self.client(base, queue_path=path)
        self.assertTrue(await deferToThread(client.flush, WAIT))
        self.assertEqual(self.message_ids("UserEvent"), sorted(lines))

    async def test_an_event_the_collector_refuses_is_reported_and_the_rest_of_its_batch_stored(self) -> None:
        """A Timestamp older than --max-event-age: only the collector knows its window."""
        base = await self.start_collector()
        errors: list[tuple[dict[str, Any], dict[str, Any]]] = []
        client = self.client(base, on_error=lambda event, error: errors.append((event, error)))
        old = {"Timestamp": "2000-01-01T00:00:00Z"}
        ids = [client.track("user", {**user(n), **(old if n == 2 else {})}) for n in range(5)]
        self.assertFalse(await deferToThread(client.flush, WAIT))  # one was refused
        self.assertEqual(self.message_ids("UserEvent"), sorted(ids[:2] + ids[3:]))
        self.assertEqual([(e["MessageID"], set(error["fields"]), error["status"]) for e, error in errors],
                         [(ids[2], {"Timestamp"}, 400)])

    async def test_an_anonymous_client_has_no_address_stored_for_its_events(self) -> None:
        """anonymous=True: Track-Anonymous: 1 on every request, so RemoteIP
        is empty for its user and item events (and whole for another Client's)."""
        base = await self.start_collector()
        anonymous, plain = self.client(base, anonymous=True), self.client(base)
        item = {"ProfileID": 1, "Region": "eu", "ItemName": "axe", "ItemType": "w", "IsUGC": False}
        hidden = [anonymous.track("user", user(1)), anonymous.track("item", item)]
        shown = plain.track("user", user(2))
        self.assertTrue(await deferToThread(anonymous.flush, WAIT))
        self.assertTrue(await deferToThread(plain.flush, WAIT))
        rows = dict(self.rows("SELECT MessageID, RemoteIP FROM UserEvent UNION ALL "
                              "SELECT MessageID, RemoteIP FROM ItemEvent"))
        self.assertEqual(rows, {hidden[0]: "", hidden[1]: "", shown: "127.0.0.1"})

    async def test_a_3_byte_utf8_column_refuses_emoji_in_the_client_once_it_has_the_document(self) -> None:
        execute(self.dsn, *ORIGINAL_MYSQL_DDL)  # 3-byte utf8 columns: marked x-bmp-only in the document
        base = await self.start_collector()
        client = self.client(base)
        client.track("user", user(1))
        self.assertTrue(await deferToThread(client.flush, WAIT))  # the document was fetched before that batch
        with self.assertRaises(InvalidEventError) as caught:
            client.track("user", {**user(2), "Message": "\U0001f600"})
        self.assertIn("outside the Basic Multilingual Plane", caught.exception.fields["Message"])

    async def test_a_widened_column_is_honoured_by_the_client_and_the_import(self) -> None:
        """The client learns the collector's rules: a Referrer of 100
        characters, refused by the built-in rules (64), goes through once
        the column is VARCHAR(255)."""
        create_schema(self.dsn)
        execute(self.dsn, "ALTER TABLE UserEvent MODIFY Referrer VARCHAR(255)")
        base = await self.start_collector()
        long = "r" * 100
        client = self.client(base)
        sent = client.track("user", {"ProfileID": 1, "Region": "eu", "Referrer": long})
        self.assertTrue(await deferToThread(client.flush, WAIT))
        with self.assertRaises(InvalidEventError) as caught:
            client.track("user", {"ProfileID": 1, "Region": "eu", "Referrer": "r" * 256})
        self.assertEqual(caught.exception.fields, {"Referrer": "must be at most 255 characters"})
        line = json.dumps({"type": "user", "ProfileID": 2, "Region": "eu", "Referrer": long})
        path = os.path.join(self.cwd, "long.ndjson")
        with open(path, "w", encoding="utf-8") as f:
            f.write(line + "\n")
        result = await deferToThread(subprocess.run, [sys.executable, "-m", "track.client", "import", base, path],
                                     env=child_env(), capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(sorted(self.rows("SELECT MessageID, Referrer FROM UserEvent")),
                         sorted([(sent, long), (message_id_for("long.ndjson", 1, line), long)]))
