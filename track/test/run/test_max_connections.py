"""`--max-connections`: past it a new connection is answered 503 with
Retry-After at once and closed; the connections already open are served,
and a new one is taken again once one of them goes.  (In this process, on a
real socket; track/test/faults/test_descriptors.py runs twistd out of
descriptors.)"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from track.test.mariadb import MYSQL_SKIP
from track.test.process import TwistdTrack, accepted_connections, children, port_of, wait_until
from track.test.rawhttp import RawClient, connect, request
from track.test.support import mysql_dsn_text, reset_mysql, serve

PATH = "/api/1.0/track/user/"
MAX = 3
CONNECTIONS = 10
WAIT = 10.0


def closed(client: RawClient) -> Deferred[bytes]:
    """All the server sent, once it closed the connection (bounded)."""
    return client.closed.addTimeout(WAIT, reactor)


def metric(site: Any, text: str) -> str:
    """The line of /metrics that starts with `text`."""
    rendered: bytes = site.metrics.render()
    lines = [line for line in rendered.decode().splitlines() if line.startswith(text)]
    return lines[0] if lines else f"{text} (absent)"


class MaxConnectionsTests(TestCase):
    def setUp(self) -> None:
        self.port, self.site = serve(self, max_connections=MAX)

    @inlineCallbacks
    def idle(self, n: int) -> Any:
        clients: list[RawClient] = []
        for _ in range(n):
            client = yield connect(self.port)
            self.addCleanup(client.abort)
            clients.append(client)
        yield wait_until(lambda: len(self.site.channels) == n, f"{n} open connections")
        return clients

    @inlineCallbacks
    def test_past_the_limit_a_connection_gets_503_with_retry_after_and_is_closed(self) -> Any:
        idle = yield self.idle(MAX)
        extra = yield connect(self.port)
        raw = yield closed(extra)  # closed by the server, without our request
        head, body = raw.split(b"\r\n\r\n", 1)
        self.assertEqual(extra.statuses(), [503])
        self.assertIn(b"\r\nRetry-After: 1\r\n", head)
        self.assertEqual(json.loads(body), {"error": "too many connections", "retry_after": 1})
        self.assertEqual(metric(self.site, "track_connections_dropped_total"),
                         'track_connections_dropped_total{reason="max_connections"} 1.0')

        # The connections already open are still served.
        idle[0].send(request(PATH, b"ProfileID=1&Region=eu"))
        yield closed(idle[0])
        self.assertEqual(idle[0].statuses(), [201])

        # One went: a new connection is served again.
        yield wait_until(lambda: len(self.site.channels) == MAX - 1, "the answered connection to close")
        again = yield connect(self.port)
        again.send(request(PATH, b"ProfileID=2&Region=eu"))
        yield closed(again)
        self.assertEqual(again.statuses(), [201])

    @inlineCallbacks
    def test_a_request_sent_at_once_still_reads_the_503(self) -> Any:
        yield self.idle(MAX)
        extra = yield connect(self.port)
        extra.send(request(PATH, b"ProfileID=3&Region=eu"))
        yield closed(extra)
        self.assertEqual(extra.statuses(), [503])


class WorkersMaxConnectionsTests(TestCase):
    """With `--workers 2`, each worker holds at most --max-connections."""

    skip = MYSQL_SKIP
    timeout = 120

    async def test_each_worker_answers_503_past_its_own_limit(self) -> None:
        reset_mysql(self)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        proc = TwistdTrack(["--dsn", mysql_dsn_text(self), "--http", "tcp:0:interface=127.0.0.1", "--workers", "2",
                            "--max-connections", str(MAX)], cwd)
        self.addCleanup(proc.stop)
        port = port_of(await proc.ready)
        await wait_until(lambda: proc.output.count(b"at most 3 connections") == 2
                         and proc.output.count(b"track listening on") >= 3, "two workers listening")
        self.assertEqual(len(re.findall(rb"#info worker \d\] file descriptors: ", proc.output)), 2)

        idle: list[RawClient] = []
        for _ in range(CONNECTIONS):
            client = await connect(port)
            self.addCleanup(client.abort)
            idle.append(client)

        def held() -> int:
            return sum(accepted_connections(pid, port) for pid in children(proc.pid or 0))

        await wait_until(lambda: held() + sum(c.closed.called for c in idle) == CONNECTIONS,
                         "every connection held or answered", timeout=WAIT)
        answered = [c for c in idle if c.closed.called]
        self.assertLessEqual(held(), 2 * MAX)
        self.assertGreaterEqual(len(answered), CONNECTIONS - 2 * MAX)
        self.assertEqual({tuple(c.statuses()) for c in answered}, {(503,)})
