"""`--workers 2`: two reactor processes on one socket, restarted when they
die, drained on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.mariadb import free_port
from track.test.process import TwistdTrack
from track.test.support import MYSQL_DSN_TEXT, MYSQL_SKIP, execute, reset_mysql

_STARTED = re.compile(rb"worker (\d) started \(pid (\d+)\)")
_LISTENING = re.compile(rb"with 2 workers")


class WorkersTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    def pids(self) -> dict[int, int]:
        return {int(w): int(p) for w, p in _STARTED.findall(self.proc.output)}

    @inlineCallbacks
    def wait_for(self, condition: Any, what: str) -> Any:
        for _ in range(600):
            if condition():
                return
            yield deferLater(reactor, 0.05, lambda: None)
        self.fail(f"timed out waiting for {what}")

    @inlineCallbacks
    def test_two_workers_serve_restart_and_drain(self) -> Any:
        dsn = reset_mysql()
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        port = free_port()
        self.proc = TwistdTrack(["--dsn", MYSQL_DSN_TEXT, "--http", f"127.0.0.1:{port}", "--workers", "2"], cwd)
        self.addCleanup(self.proc.stop)
        yield self.wait_for(lambda: len(self.pids()) == 2 and self.proc.output.count(b"track listening on") >= 3,
                            "two workers listening")
        pool = HTTPConnectionPool(reactor, persistent=False)
        url = f"http://127.0.0.1:{port}/api/1.0/track/user/"

        @inlineCallbacks
        def post(n: int) -> Any:
            response = yield treq.post(url, data=f"ProfileID={n}&Region=eu&MessageID=w-{n}".encode(),
                                       pool=pool, headers={"Content-Type": "application/x-www-form-urlencoded"})
            yield response.content()
            return response.code

        codes = []
        for n in range(40):
            codes.append((yield post(n)))
        first = self.pids()
        os.kill(first[0], signal.SIGKILL)
        yield self.wait_for(lambda: self.pids().get(0) not in (None, first[0]), "worker 0 to be restarted")
        yield self.wait_for(lambda: self.proc.output.count(b"track listening on") >= 4, "the new worker to listen")
        for n in range(40, 80):
            codes.append((yield post(n)))
        self.assertEqual(set(codes), {201})
        self.proc.signal("TERM")
        yield self.proc.ended
        self.assertEqual(self.proc.output.count(b"all events flushed"), 2)
        self.assertIn(b"all workers stopped", self.proc.output)
        rows = execute(dsn, "SELECT COUNT(*), COUNT(DISTINCT MessageID) FROM UserEvent")
        self.assertEqual(rows, [(80, 80)])
        for pid in self.pids().values():
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
