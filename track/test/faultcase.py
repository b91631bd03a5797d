"""The harness of the fault tests (test_faults, test_disk_faults): a private
mariadbd, `twistd -n track` as a child process, clients posting events, and
the check that every acknowledged event is stored exactly once.

FaultCase has no tests of its own, so a module that imports it runs none
twice.  It talks to track only as a client would (HTTP), to the database
through ThrowawayMariaDB, and reads track's files on disk: it imports no
product module.

Ports: the first start_track() of a test listens on `tcp:0` and reads the
port twistd was given from its log; a restart after a kill or a stop listens
on that same port again, so clients keep their URL.  (free_port() is only
for mariadbd, which cannot report a port it picked.)
"""

from __future__ import annotations

import glob
import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.mariadb import MARIADBD_SKIP, ThrowawayMariaDB, throwaway_mariadb
from track.test.process import ADMIN_ANY_PORT, TwistdTrack, port_of

CLIENTS = 8
MAX_REQUESTS = 20_000  # bound on every load loop
WAIT = 60.0  # bound on every condition waited for
TABLE = "SessionEvent"
SESSION_PATH = "/api/1.0/track/session/"
ANY_PORT = "tcp:0:interface=127.0.0.1"
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
# A restart binds the port the first start was given.  Between a kill and
# the restart nobody listens on it, so (rarely) a client socket of the
# machine may hold it as its local port for a moment: retry the bind, bounded.
BIND_ATTEMPTS = 5
BIND_RETRY_DELAY = 0.5


_clock: Any = reactor


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(_clock, seconds, lambda: None)


class Load:
    """Clients posting session events until stopped (or MAX_REQUESTS).

    Each event has a unique MessageID; a 503 or a failed connection is
    retried with the same MessageID, as a real client would.  `persistent`
    False opens a new connection for every request (so that with --workers
    each worker accepts some)."""

    def __init__(self, url: str, tolerate_refused: bool = False, persistent: bool = True,
                 clients: int = CLIENTS) -> None:
        self.url = url
        self.tolerate_refused = tolerate_refused
        self.acked: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.refused = 0
        self.other_errors: list[str] = []
        self.sent = 0
        self._stop = False
        self.pool = HTTPConnectionPool(reactor, persistent=persistent)
        self.pool.maxPersistentPerHost = clients
        self.done = DeferredList([Deferred.fromCoroutine(self._client(n)) for n in range(clients)])

    async def _client(self, n: int) -> None:
        message_id = None
        while not self._stop and self.sent < MAX_REQUESTS:
            if message_id is None:
                self.sent += 1
                message_id = f"c{n}-{self.sent}"
            body = (f"Region=eu&SessionID={message_id}&RemoteIP=10.0.0.1&SessionType=load"
                    f"&MessageID={message_id}").encode()
            try:
                response = await treq.post(self.url, data=body, pool=self.pool, timeout=WAIT, headers=FORM)
                await response.content()
            except Exception as e:
                if self.tolerate_refused:
                    self.refused += 1
                else:
                    self.other_errors.append(repr(e))
                await sleep(0.05)
                continue  # retry the same event
            self.statuses[response.code] += 1
            if response.code == 201:
                self.acked.append(message_id)
                message_id = None
            else:
                await sleep(0.05)  # 503: retry the same MessageID

    async def wait_for_acks(self, count: int) -> None:
        deadline = _clock.seconds() + WAIT
        while len(self.acked) < count:
            if _clock.seconds() > deadline:
                raise AssertionError(f"only {len(self.acked)} of {count} acknowledged: {self.statuses}")
            await sleep(0.05)

    async def stop(self) -> None:
        self._stop = True
        await self.done
        await self.pool.closeCachedConnections()


async def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    """Poll `check` (which may return a Deferred) until true, bounded by `timeout`."""
    deadline = _clock.seconds() + timeout
    while True:
        try:
            ok = await maybeDeferred(check)
        except Exception:
            ok = False
        if ok:
            return
        if _clock.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await sleep(0.1)


def spool_segments(directory: str) -> list[str]:
    """The `*.spool` segment files in `directory` (none if it does not exist)."""
    return sorted(glob.glob(os.path.join(directory, "*.spool")))


class FaultCase(TestCase):
    """A private mariadbd (self.db, database "track"), a working directory
    for twistd (self.cwd), and the means to start, kill and stop track, to
    load it and to check what it stored.  No tests of its own."""

    skip = MARIADBD_SKIP
    timeout = 300

    def setUp(self) -> None:
        self.db: ThrowawayMariaDB = throwaway_mariadb(self, "track")
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)
        self.port: int | None = None  # known after the first start_track()
        self.base = ""
        self.proc: TwistdTrack | None = None
        self.procs: list[TwistdTrack] = []
        self.spool_dir = os.path.join(self.cwd, "track-spool")  # track's default, relative to its cwd
        self.spool_arg: str | None = None  # a --spool-dir to pass, if any
        self.extra_acked: list[tuple[str, str]] = []  # (table, MessageID) acknowledged outside the load
        self.addCleanup(self._keep_outputs)

    def _keep_outputs(self) -> None:
        """Leave each twistd's output beside the test, for a post-mortem."""
        for n, proc in enumerate(self.procs):
            with open(os.path.join(self.cwd, f"twistd-{n}.out"), "wb") as f:
                f.write(proc.output)

    @property
    def url(self) -> str:
        """The session endpoint (the load's URL)."""
        assert self.base, "start track first: its port is known once it listens"
        return f"{self.base}{SESSION_PATH}"

    def load(self, tolerate_refused: bool = False, **kwargs: Any) -> Load:
        load = Load(self.url, tolerate_refused, **kwargs)
        self.addCleanup(load.stop)
        return load

    # -- track -------------------------------------------------------------------

    async def start_track(self, *extra: str, dsn: str | None = None) -> str:
        """`twistd -n track` against the private server; fires with its base
        URL once it listens.  The first start of a test takes any free port
        (tcp:0); later ones the same port again."""
        args = ["--dsn", dsn or self.db.dsn("track")]
        if self.spool_arg is not None:
            args += ["--spool-dir", self.spool_arg]
        for attempt in range(1, BIND_ATTEMPTS + 1):
            http = ANY_PORT if self.port is None else f"tcp:{self.port}:interface=127.0.0.1"
            proc = self.proc = TwistdTrack([*args, "--http", http, *ADMIN_ANY_PORT, *extra], self.cwd)
            self.procs.append(proc)
            self.addCleanup(proc.stop)
            try:
                base = await proc.ready
            except RuntimeError:  # exited before listening
                if self.port is None or b"Address already in use" not in proc.output or attempt == BIND_ATTEMPTS:
                    raise
                print(f"\nport {self.port} taken at restart (attempt {attempt}); retrying")
                self.procs.remove(proc)  # its "Address already in use" is no fault of track's
                await sleep(BIND_RETRY_DELAY)
                continue
            break
        if self.port is None:
            self.port, self.base = port_of(base), base
        self.assertEqual(base, self.base, "a restart must listen where clients already post")
        return base

    async def kill_track(self) -> None:
        assert self.proc is not None
        self.proc.signal("KILL")
        await self.proc.ended

    async def stop_track(self) -> Exception:
        """SIGTERM and a clean exit (bounded: TwistdTrack.stop fails the test
        if twistd does not exit in time)."""
        assert self.proc is not None
        reason = await self.proc.stop()
        exit_status = getattr(reason, "signal", None) or getattr(reason, "exitCode", None) or 0
        self.assertIn(exit_status, (signal.SIGTERM, 0), f"twistd did not exit cleanly: {reason!r}")
        return reason

    def output_lines(self, needles: tuple[bytes, ...], start: int = 0) -> list[bytes]:
        assert self.proc is not None
        return [line for line in self.proc.output[start:].splitlines() if any(n in line for n in needles)]

    def assert_no_traceback(self) -> None:
        for proc in self.procs:
            self.assertNotIn(b"Traceback", proc.output, proc.output.decode(errors="replace")[-6000:])

    # -- asking track, as a client ---------------------------------------------------

    async def health(self) -> Any:
        pool = HTTPConnectionPool(reactor, persistent=False)
        # The admin listener's: the public one names no host and no error.
        assert self.proc is not None
        response = await treq.get(f"{await self.proc.admin()}/healthz", pool=pool, timeout=10)
        body = await response.json()
        return body

    async def drained(self) -> bool:
        body = await self.health()
        return bool(body["database"] == "up" and body["spool"]["events"] == 0)

    async def readyz(self) -> int:
        response = await treq.get(f"{self.base}/readyz", pool=HTTPConnectionPool(reactor, False), timeout=10)
        await response.content()
        code: int = response.code
        return code

    async def post(self, path: str, body: bytes, content_type: str) -> tuple[int, list[bytes] | None, bytes]:
        """One request on its own connection: (status, Retry-After, body)."""
        headers: dict[str | bytes, str | bytes] = {"Content-Type": content_type}
        response = await treq.post(f"{self.base}{path}", data=body, pool=HTTPConnectionPool(reactor, False),
                                   timeout=WAIT, headers=headers)
        content = await response.content()
        return response.code, response.headers.getRawHeaders(b"Retry-After"), content

    # -- the database ------------------------------------------------------------------

    def stop_db(self) -> Deferred[None]:
        return deferToThread(self.db.stop)

    def start_db(self) -> Deferred[None]:
        return deferToThread(self.db.start)

    # -- what was stored -----------------------------------------------------------------

    def dead_letter_ids(self) -> list[str]:
        """MessageIDs in the dead letters of the spool and of every worker's spool."""
        ids: list[str] = []
        for directory in [self.spool_dir, *sorted(glob.glob(os.path.join(self.spool_dir, "worker-*")))]:
            try:
                with open(os.path.join(directory, "dead-letter", "events.jsonl"), "rb") as f:
                    lines = f.read().splitlines()
            except FileNotFoundError:
                continue
            ids += [json.loads(line).get("MessageID") for line in lines if line.strip()]
        return ids

    def stored_counts(self, tables: Collection[str] = (TABLE,)) -> dict[tuple[str, str], int]:
        """How many rows each (table, MessageID) has."""
        counts: dict[tuple[str, str], int] = {}
        for table in tables:
            rows = self.db.execute(f"SELECT MessageID, COUNT(*) FROM {table} GROUP BY MessageID", database="track")
            counts.update({(table, m): n for m, n in rows})
        return counts

    def check_stored_once(self, load: Load, allow: Collection[int] = frozenset({201, 503}),
                          **more: Any) -> dict[str, Any]:
        """Every acknowledged event (the load's and self.extra_acked) stored
        exactly once, none dead-lettered, and clients saw only `allow`;
        prints the figures."""
        counts = self.stored_counts({TABLE, *(t for t, _ in self.extra_acked)})
        acked = {(TABLE, m) for m in load.acked} | set(self.extra_acked)
        lost = acked - set(counts)
        duplicated = {k for k, n in counts.items() if n > 1}
        dead = self.dead_letter_ids()
        figures = {"acknowledged": len(acked), "by the load": len(load.acked),
                   "by other requests": len(self.extra_acked), "lost": len(lost),
                   "duplicated": len(duplicated), "dead letters": len(dead),
                   "statuses": dict(load.statuses), "refused connections": load.refused,
                   "requests sent": load.sent, **more}
        print(f"\n{self.id().rsplit('.', 1)[-1]}: {figures}")
        self.assertEqual(len(load.acked), len(set(load.acked)), "one MessageID acknowledged twice")
        self.assertEqual(sorted(lost)[:20], [], f"{len(lost)} acknowledged events lost")
        self.assertEqual(duplicated, set())
        self.assertEqual(dead, [], "acknowledged events dead-lettered")
        self.assertEqual(set(load.statuses) - set(allow), set())
        self.assertEqual(load.other_errors, [])
        return figures
