"""A 201 from the spool only after the event's bytes and its segment's name
are on disk: the calls are watched, in the order they happen, against the
moment the client gets its answer."""

from __future__ import annotations

import os
import threading
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS
from track.pipeline.replay import Replay
from track.spool import encode
from track.spool.records import SEGMENT_MAGIC
from track.storage.dialect import dialect_for
from track.storage.dsn import parse_dsn
from track.storage.store import Store
from track.test.pipeline.test_replay import SQLITE_NO_EVIL, DatabaseState, session
from track.test.support import client_pool, create_schema, execute, open_spool, serve, sqlite_dsn

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


class DeadLetterDurabilityTests(TestCase):
    """A replay takes an event out of the spool only once its dead letter
    (and the damaged bytes of a record kept aside) is on disk: the file
    fsync'd and, when it is new, its name (its directory) too, before the
    segment is deleted."""

    async def test_dead_letters_and_corrupt_bytes_are_fsynced_before_the_segment_goes(self) -> None:
        calls: list[tuple[str, str]] = []
        real_fsync, real_unlink = os.fsync, os.unlink

        def fsync(fd: int) -> None:
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = "?"
            calls.append(("fsync", path))
            real_fsync(fd)

        def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            calls.append(("unlink", os.path.realpath(path)))
            real_unlink(path, *args, **kwargs)

        dsn = sqlite_dsn(self)
        create_schema(dsn)
        execute(dsn, SQLITE_NO_EVIL)
        spool_dir = os.path.realpath(self.mktemp())
        os.makedirs(spool_dir)
        segment = os.path.join(spool_dir, "000000000001.spool")
        records = [encode(KINDS["session"], session(m, "evil" if m == "e-1" else "login"))
                   for m in ("e-0", "e-1", "e-2")]
        damaged = bytearray(records[2])
        damaged[30] ^= 0x01  # a flipped bit inside the third record: kept aside as corrupt bytes
        with open(segment, "wb") as f:
            f.write(SEGMENT_MAGIC + records[0] + records[1] + bytes(damaged) + records[0])
        store = Store(dialect_for(dsn))
        self.addCleanup(store.close)
        spool = open_spool(self, spool_dir)
        self.patch(os, "fsync", fsync)
        self.patch(os, "unlink", unlink)
        await Replay(store, spool, reactor, dict(KINDS), DatabaseState()).run()
        self.flushLoggedErrors()

        letters = os.path.join(spool_dir, "dead-letter")
        (corrupt,) = [os.path.join(letters, n) for n in os.listdir(letters) if n.startswith("corrupt-")]
        gone = calls.index(("unlink", segment))
        for path in (os.path.join(letters, "events.jsonl"), corrupt):
            synced = [i for i, call in enumerate(calls) if call == ("fsync", path)]
            self.assertTrue(synced and synced[0] < gone, f"{path} was not fsync'd before the segment went: {calls}")
            named = [i for i, call in enumerate(calls) if call == ("fsync", letters) and synced[0] < i < gone]
            self.assertTrue(named, f"the new file {path} was not fsync'd in its directory before the segment "
                                   f"went: {calls}")
