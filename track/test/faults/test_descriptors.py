"""`twistd track` out of file descriptors (run under `prlimit --nofile=512`),
flooded with more idle connections than it has descriptors:

- a new client gets an answer or a closed connection at once (not a wait
  in the backlog until a timeout frees a descriptor);
- the log stays short: accept errors and timed-out connections are counted
  and summarized, not logged one line each;
- normal service returns once the idle connections go.
"""

from __future__ import annotations

import os
import re
import shutil

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.process import TwistdTrack, accepted_connections, port_of, wait_until
from track.test.rawhttp import RawClient, connect, request

DESCRIPTORS = 512
IDLE = 700  # more connections than the process has descriptors
DEFAULT_FLOOD = 470  # more than the default --max-connections, fewer than the descriptors
PATH = "/api/1.0/track/user/"
ANY_PORT = "tcp:0:interface=127.0.0.1"
FAST = 5.0  # bound on "at once": the accept pause is 0.5 s, the idle timeout 13 s
REQUEST_TIMEOUT = 12  # idle connections go after 13 s
SETTLE = 8.0  # bound on the flood being held or closed, below the idle timeout
WAIT = 60.0
RETRY = 0.5
MAX_LOG_LINES = 40  # start-up and shutdown take about 15
PRLIMIT = shutil.which("prlimit")
PRLIMIT_SKIP = None if PRLIMIT else "REQUIRED-SKIPPED: prlimit (util-linux) is not installed"


class DescriptorExhaustionTests(TestCase):
    skip = PRLIMIT_SKIP
    timeout = 240

    def start(self, *args: str) -> TwistdTrack:
        assert PRLIMIT is not None
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        track = TwistdTrack(["--http", ANY_PORT, "--dsn", f"sqlite:///{directory}/track.sqlite3",
                             "--spool-dir", os.path.join(directory, "spool"), *args],
                            directory, prefix=[PRLIMIT, f"--nofile={DESCRIPTORS}", "--"])
        self.addCleanup(self.stopped, track)
        return track

    async def stopped(self, track: TwistdTrack) -> None:
        if track.exit_reason is None:
            await track.stop()

    async def flood(self, port: int, n: int) -> list[RawClient]:
        clients = []
        for _ in range(n):
            client: RawClient = await connect(port)
            self.addCleanup(client.abort)
            clients.append(client)
        return clients

    async def post(self, port: int, body: bytes) -> RawClient:
        client: RawClient = await connect(port)
        self.addCleanup(client.abort)
        client.send(request(PATH, body))
        return client

    async def get(self, url: str) -> str:
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(url, pool=pool)
        text: str = await response.text()
        return text

    async def test_out_of_descriptors_new_clients_fail_fast_and_service_returns(self) -> None:
        # No --max-connections cap below the descriptor limit: accept()
        # itself runs out (EMFILE).  Idle connections go after 13 s.
        track = self.start("--max-connections", "100000", "--request-timeout", str(REQUEST_TIMEOUT))
        base = await track.ready
        port = port_of(base)
        assert track.pid is not None
        self.assertIn(b"file descriptors: limit 512", track.output)

        idle = await self.flood(port, IDLE)
        # Every idle client is soon either held by track or closed by it,
        # long before any times out: none is left waiting in the backlog.
        await wait_until(lambda: accepted_connections(track.pid or 0, port)
                         + sum(c.closed.called for c in idle) >= IDLE, "the flood to settle", timeout=SETTLE)
        held = accepted_connections(track.pid, port)
        self.assertLess(held, DESCRIPTORS)
        self.assertGreater(sum(c.closed.called for c in idle), 0)  # closed at once, not left waiting

        # A new client, while no descriptor is free: answered or closed at once.
        newcomer = await self.post(port, b"ProfileID=1&Region=eu")
        await wait_until(lambda: newcomer.closed.called, "the newcomer's answer", timeout=FAST)
        self.assertIn(newcomer.statuses(), ([], [201], [503]))

        # The idle ones time out: normal service returns.
        async def served() -> bool:
            client = await self.post(port, b"ProfileID=2&Region=eu")
            await client.closed.addTimeout(WAIT, reactor)
            return client.statuses() == [201]

        for _ in range(int(WAIT / RETRY)):
            if await served():
                break
            await deferLater(reactor, RETRY, lambda: None)
        else:
            self.fail("service did not return once the idle connections went")
        await wait_until(lambda: all(c.closed.called for c in idle), "the idle connections to time out",
                         timeout=WAIT)

        metrics = await self.get(base + "/metrics")
        emfile = re.search(r'^track_accept_errors_total\{errno="EMFILE"\} ([0-9.]+)$', metrics, re.M)
        dropped = re.search(r'^track_connections_dropped_total\{reason="no_descriptors"\} ([0-9.]+)$',
                            metrics, re.M)
        timed_out = re.search(r"^track_connections_timed_out_total ([0-9.]+)$", metrics, re.M)
        assert emfile and dropped and timed_out, metrics
        self.assertGreaterEqual(float(emfile.group(1)), 1)
        self.assertGreaterEqual(float(dropped.group(1)), IDLE - held, metrics + track.output.decode())
        self.assertGreaterEqual(float(timed_out.group(1)), held)

        await track.stop()
        lines = track.output.decode(errors="replace").splitlines()
        self.assertLessEqual(len(lines), MAX_LOG_LINES, "\n".join(lines))
        for noisy in ("EMFILE recovery", "Could not accept", "Timing out client", "Traceback"):
            self.assertEqual([line for line in lines if noisy in line], [])
        self.assertTrue(any("out of file descriptors" in line for line in lines), "\n".join(lines))
        self.assertTrue(any("idle connections" in line for line in lines), "\n".join(lines))

    async def test_by_default_connections_past_the_descriptor_limit_are_answered_503(self) -> None:
        track = self.start("--request-timeout", "30")
        port = port_of(await track.ready)
        # The default cap is the limit less 64 descriptors: 448 connections.
        idle = await self.flood(port, DEFAULT_FLOOD)
        await wait_until(lambda: accepted_connections(track.pid or 0, port) + sum(c.closed.called for c in idle)
                         >= DEFAULT_FLOOD, "the flood to settle", timeout=WAIT)
        refused = [c for c in idle if c.closed.called]
        self.assertGreater(len(refused), 0)
        self.assertEqual({tuple(c.statuses()) for c in refused}, {(503,)})
        self.assertTrue(all(b"\r\nRetry-After: 1\r\n" in c.received for c in refused))

        newcomer = await self.post(port, b"ProfileID=3&Region=eu")
        await wait_until(lambda: newcomer.closed.called, "the newcomer's answer", timeout=FAST)
        self.assertEqual(newcomer.statuses(), [503])

        for client in idle:
            client.abort()
        await wait_until(lambda: accepted_connections(track.pid or 0, port) == 0, "the idle ones to go",
                         timeout=WAIT)
        served = await self.post(port, b"ProfileID=4&Region=eu")
        await served.closed.addTimeout(WAIT, reactor)
        self.assertEqual(served.statuses(), [201])
