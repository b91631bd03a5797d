"""A 201 from the spool only after the event's bytes and its segment's name
are on disk: the calls are watched, in the order they happen, against the
moment the client gets its answer."""

from __future__ import annotations

import os
import threading
from typing import Any

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from track.storage.dsn import parse_dsn
from track.test.support import client_pool, serve

# Nothing listens on port 1: the database is down from the start, so every
# event goes to the spool.
UNREACHABLE = parse_dsn("mysql://root@127.0.0.1:1/track")


class SpoolDurabilityTests(TestCase):
    def setUp(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        real_write, real_fsync = os.write, os.fsync

        def where(fd: int) -> str:
            try:
                return os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                return "?"

        def write(fd: int, data: Any) -> int:
            with self.lock:
                self.calls.append(("write", where(fd), bytes(data)))
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            with self.lock:
                self.calls.append(("fsync", where(fd), b""))
            real_fsync(fd)

        self.patch(os, "write", write)
        self.patch(os, "fsync", fsync)
        self.spool_dir = os.path.realpath(self.mktemp())
        os.makedirs(self.spool_dir)
        port, _ = serve(self, UNREACHABLE, "--spool-dir", self.spool_dir)
        self.base = f"http://127.0.0.1:{port}"
        self.pool = client_pool(self)

    @inlineCallbacks
    def post(self, kind: str, message_id: str, body: Any = None) -> Any:
        fields = {"Region": "eu", "SessionID": message_id, "RemoteIP": "203.0.113.7",
                  "SessionType": "login", "MessageID": message_id}
        if kind == "batch":
            response = yield treq.post(f"{self.base}/api/1.0/track/batch/", json=body, pool=self.pool)
        else:
            response = yield treq.post(f"{self.base}/api/1.0/track/session/", data=fields, pool=self.pool)
        yield response.content()
        with self.lock:
            self.calls.append(("answer", str(response.code), b""))
        return response.code

    def assert_durable_before_the_answer(self, message_ids: list[str]) -> None:
        with self.lock:
            calls = list(self.calls)
        answer = max(i for i, call in enumerate(calls) if call[0] == "answer")
        written = [i for i, (what, path, data) in enumerate(calls)
                   if what == "write" and path.startswith(self.spool_dir)
                   and all(m.encode() in data for m in message_ids)]
        self.assertTrue(written, f"the events were never written to the spool: {calls}")
        segment = calls[written[0]][1]
        self.assertTrue(segment.endswith(".spool"), segment)
        synced = [i for i, (what, path, _) in enumerate(calls)
                  if what == "fsync" and path == segment and i > written[0]]
        self.assertTrue(synced and synced[0] < answer,
                        f"the 201 came before the segment was fsync'd after the write: {calls}")
        self.assertLess(written[0], answer)
        directory = [i for i, (what, path, _) in enumerate(calls)
                     if what == "fsync" and path == self.spool_dir]
        self.assertTrue(directory and directory[0] < answer,
                        f"the segment's name was not fsync'd (its directory) before the 201: {calls}")

    @inlineCallbacks
    def test_a_single_event_is_written_and_fsynced_before_its_201(self) -> Any:
        code = yield self.post("session", "durable-1")
        self.assertEqual(code, 201)
        self.assert_durable_before_the_answer(["durable-1"])

    @inlineCallbacks
    def test_a_batch_is_one_write_and_one_fsync_before_its_201(self) -> Any:
        ids = [f"durable-b{n}" for n in range(5)]
        body = {"events": [{"type": "session", "Region": "eu", "SessionID": m, "RemoteIP": "203.0.113.7",
                            "SessionType": "login", "MessageID": m} for m in ids]}
        code = yield self.post("batch", "", body)
        self.assertEqual(code, 201)
        self.assert_durable_before_the_answer(ids)  # all five in one write, fsync'd before the answer
