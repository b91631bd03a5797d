"""Fault tests: crashes, database outages, a full spool, a start while the
database is down, and a torn spool tail.

Each runs `twistd -n track` against a private mariadbd (never the shared
server) and clients posting events with unique MessageIDs, retrying a 503
with the same MessageID as a real client would.  Each asserts that every
acknowledged event is stored, none twice, and that clients saw only 201 and
503 (and, while twistd is being killed, refused connections).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Callable

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.mariadb import MARIADBD_SKIP, ThrowawayMariaDB, free_port, throwaway_mariadb
from track.test.process import TwistdTrack

CLIENTS = 8
MAX_REQUESTS = 20_000  # bound on every load loop
WAIT = 60.0  # bound on every condition waited for
TABLE = "SessionEvent"


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class Load:
    """Clients posting session events until stopped (or MAX_REQUESTS)."""

    def __init__(self, url: str, tolerate_refused: bool = False) -> None:
        self.url = url
        self.tolerate_refused = tolerate_refused
        self.acked: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.refused = 0
        self.other_errors: list[str] = []
        self.sent = 0
        self._stop = False
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = CLIENTS
        self.done = DeferredList([self._client(n) for n in range(CLIENTS)])

    @inlineCallbacks
    def _client(self, n: int) -> Any:
        message_id = None
        while not self._stop and self.sent < MAX_REQUESTS:
            if message_id is None:
                self.sent += 1
                message_id = f"c{n}-{self.sent}"
            body = (f"Region=eu&SessionID={message_id}&RemoteIP=10.0.0.1&SessionType=load"
                    f"&MessageID={message_id}").encode()
            try:
                response = yield treq.post(self.url, data=body, pool=self.pool, timeout=WAIT, headers={
                    "Content-Type": "application/x-www-form-urlencoded"})
                yield response.content()
            except Exception as e:
                if self.tolerate_refused:
                    self.refused += 1
                else:
                    self.other_errors.append(repr(e))
                yield sleep(0.05)
                continue  # retry the same event
            self.statuses[response.code] += 1
            if response.code == 201:
                self.acked.append(message_id)
                message_id = None
            else:
                yield sleep(0.05)  # 503: retry the same MessageID

    @inlineCallbacks
    def wait_for_acks(self, count: int) -> Any:
        deadline = reactor.seconds() + WAIT  # type: ignore[attr-defined]
        while len(self.acked) < count:
            if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                raise AssertionError(f"only {len(self.acked)} of {count} acknowledged: {self.statuses}")
            yield sleep(0.05)

    @inlineCallbacks
    def stop(self) -> Any:
        self._stop = True
        yield self.done
        yield self.pool.closeCachedConnections()


@inlineCallbacks
def wait_until(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` (which may return a Deferred) until true, bounded by WAIT."""
    deadline = reactor.seconds() + WAIT  # type: ignore[attr-defined]
    while True:
        try:
            ok = yield check()
        except Exception:
            ok = False
        if ok:
            return
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            raise AssertionError(f"timed out waiting for {what}")
        yield sleep(0.1)


class FaultTests(TestCase):
    skip = MARIADBD_SKIP
    timeout = 300

    def setUp(self) -> None:
        self.db: ThrowawayMariaDB = throwaway_mariadb(self, "track")
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/api/1.0/track/session/"
        self.proc: TwistdTrack | None = None

    def load(self, tolerate_refused: bool = False) -> Load:
        load = Load(self.url, tolerate_refused)
        self.addCleanup(load.stop)
        return load

    def start_track(self, *extra: str) -> Deferred[str]:
        self.proc = TwistdTrack(["--dsn", self.db.dsn("track"), "--http",
                                 f"tcp:{self.port}:interface=127.0.0.1", *extra], self.cwd)
        self.addCleanup(self.proc.stop)
        return self.proc.ready

    @inlineCallbacks
    def kill_track(self) -> Any:
        assert self.proc is not None
        self.proc.signal("KILL")
        yield self.proc.ended

    @inlineCallbacks
    def health(self) -> Any:
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = yield treq.get(f"{self.base}/healthz", pool=pool, timeout=10)
        body = yield response.json()
        return body

    @inlineCallbacks
    def drained(self) -> Any:
        body = yield self.health()
        return body["database"] == "up" and body["spool"]["events"] == 0

    def stop_db(self) -> Deferred[None]:
        return deferToThread(self.db.stop)

    def start_db(self) -> Deferred[None]:
        return deferToThread(self.db.start)

    def check_stored_once(self, load: Load, allow: set[int] = {201, 503}) -> dict[str, int]:
        rows = self.db.execute(f"SELECT MessageID, COUNT(*) FROM {TABLE} GROUP BY MessageID", database="track")
        counts = {m: n for m, n in rows}
        acked = set(load.acked)
        lost = acked - set(counts)
        duplicated = {m for m, n in counts.items() if n > 1}
        figures = {"acknowledged": len(acked), "lost": len(lost), "duplicated": len(duplicated),
                   "statuses": dict(load.statuses), "refused connections": load.refused}
        print(f"\n{self.id().rsplit('.', 1)[-1]}: {figures}")
        self.assertEqual(len(load.acked), len(acked), "one MessageID acknowledged twice")
        self.assertEqual(lost, set())
        self.assertEqual(duplicated, set())
        self.assertEqual(set(load.statuses) - allow, set())
        self.assertEqual(load.other_errors, [])
        return figures

    @inlineCallbacks
    def test_kill_9_three_times_under_load_then_restart(self) -> Any:
        yield self.start_track()
        load = self.load(tolerate_refused=True)
        for round_ in range(3):
            yield load.wait_for_acks(len(load.acked) + 150)
            if round_ == 2:
                yield self.stop_db()  # the last crash hits events acknowledged from the spool
                yield load.wait_for_acks(len(load.acked) + 100)
            yield self.kill_track()
            if round_ == 2:
                yield self.start_db()
            yield self.start_track()
        yield load.wait_for_acks(len(load.acked) + 100)
        yield load.stop()
        yield wait_until(self.drained, "the spool to be replayed")
        self.check_stored_once(load)

    @inlineCallbacks
    def test_database_stopped_for_seconds_under_load(self) -> Any:
        yield self.start_track()
        load = self.load()
        yield load.wait_for_acks(200)
        yield self.stop_db()
        during = len(load.acked)
        yield sleep(3)
        body = yield self.health()
        self.assertEqual(body["database"], "down")
        self.assertGreater(len(load.acked), during + 50, "no events acknowledged from the spool")
        yield self.start_db()
        yield wait_until(self.drained, "the spool to be replayed")
        yield load.wait_for_acks(len(load.acked) + 100)
        yield load.stop()
        self.check_stored_once(load, allow={201})

    @inlineCallbacks
    def test_a_full_spool_answers_503_until_the_database_returns(self) -> Any:
        yield self.start_track("--spool-max-bytes", "30000")
        yield self.stop_db()
        load = self.load()
        yield wait_until(lambda: load.statuses[503] > 20, "503s from a full spool")
        response = yield treq.get(f"{self.base}/readyz", pool=HTTPConnectionPool(reactor, False))
        self.assertEqual(response.code, 503)
        body = yield self.health()
        self.assertLessEqual(body["spool"]["bytes"], 30000)
        self.assertGreater(body["spool"]["events"], 50)
        yield self.start_db()
        yield wait_until(self.drained, "the spool to be replayed")
        response = yield treq.get(f"{self.base}/readyz", pool=HTTPConnectionPool(reactor, False))
        self.assertEqual(response.code, 200)
        yield load.wait_for_acks(len(load.acked) + 50)
        yield load.stop()
        self.check_stored_once(load)

    @inlineCallbacks
    def test_start_while_the_database_is_down(self) -> Any:
        yield self.stop_db()
        yield self.start_track()
        body = yield self.health()
        self.assertEqual((body["status"], body["database"]), ("ok", "down"))
        load = self.load()
        yield load.wait_for_acks(100)
        yield self.start_db()
        yield wait_until(self.drained, "migration and replay once the database appears")
        yield load.wait_for_acks(len(load.acked) + 50)
        yield load.stop()
        self.check_stored_once(load, allow={201})
        versions = self.db.execute("SELECT Version FROM TrackSchemaVersion ORDER BY Version", database="track")
        self.assertEqual(versions, [(1,), (2,)])

    @inlineCallbacks
    def test_a_torn_spool_tail_is_skipped_and_the_rest_replayed(self) -> Any:
        yield self.stop_db()
        yield self.start_track()
        load = self.load()
        yield load.wait_for_acks(120)
        yield load.stop()
        yield self.kill_track()
        spool = os.path.join(self.cwd, "track-spool")
        (segment,) = [n for n in os.listdir(spool) if n.endswith(".spool")]
        with open(os.path.join(spool, segment), "ab") as f:
            f.write(b"\x00\x00\x01\x00\xde\xad\xbe\xef" + b'["session",["eu","torn')  # cut short
        yield self.start_db()
        yield self.start_track()
        yield wait_until(self.drained, "the spool to be replayed")
        self.assertIn(b"torn record", self.proc.output)  # type: ignore[union-attr]
        self.check_stored_once(load, allow={201})
        stored = self.db.execute(f"SELECT COUNT(*) FROM {TABLE}", database="track")[0][0]
        self.assertEqual(stored, len(set(load.acked)))
