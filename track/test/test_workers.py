"""`--workers 2`: two reactor processes on one socket, restarted when they
die, drained on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from typing import Any, Callable

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, eventAsJSON, formatEventAsClassicLogText
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.mariadb import free_port
from track.test.process import TWISTD, TwistdTrack, child_env, children
from track.workers import worker_event
from track.test.support import MYSQL_DSN_TEXT, MYSQL_SKIP, execute, reset_mysql

@inlineCallbacks
def wait_until(condition: Callable[[], bool], what: str) -> Any:
    """Poll (bounded) until `condition()`; fail the test after 60 s."""
    for _ in range(1200):
        if condition():
            return
        yield deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


_STARTED = re.compile(rb"worker (\d) started \(pid (\d+)\)")
_LISTENING = re.compile(rb"with 2 workers")


class WorkersTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    def pids(self) -> dict[int, int]:
        return {int(w): int(p) for w, p in _STARTED.findall(self.proc.output)}

    @inlineCallbacks
    def test_two_workers_serve_restart_and_drain(self) -> Any:
        dsn = reset_mysql()
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        port = free_port()
        self.proc = TwistdTrack(["--dsn", MYSQL_DSN_TEXT, "--http", f"127.0.0.1:{port}", "--workers", "2"], cwd)
        self.addCleanup(self.proc.stop)
        yield wait_until(lambda: len(self.pids()) == 2 and self.proc.output.count(b"track listening on") >= 3,
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
        yield wait_until(lambda: self.pids().get(0) not in (None, first[0]), "worker 0 to be restarted")
        yield wait_until(lambda: self.proc.output.count(b"track listening on") >= 4, "the new worker to listen")
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


def stop_daemon(pidfile: str) -> None:
    """After a failed test: SIGKILL the daemon's parent and its workers."""
    try:
        with open(pidfile) as f:
            pid = int(f.read())
    except (FileNotFoundError, ValueError):
        return
    for child in children(pid):
        _kill(child)
    _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class WorkerLogTests(TestCase):
    """Worker logs reach the parent's log, wherever that is."""

    def test_a_json_line_becomes_the_same_event_marked_with_its_worker(self) -> None:
        line = eventAsJSON({"log_format": "stored {n}", "n": 3, "log_level": LogLevel.warn,
                            "log_namespace": "track.service", "log_time": 1.0}).encode()
        event = worker_event(b"\x1e" + line + b"\n", 1, 2.0)
        self.assertEqual(formatEventAsClassicLogText(event, formatTime=lambda t: "T"),
                         "T [track.service#warn worker 1] stored 3\n")

    def test_any_other_line_is_kept_as_an_error(self) -> None:
        event = worker_event(b"Traceback (most recent call last):\n", 0, 2.0)
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertEqual(formatEventAsClassicLogText(event, formatTime=lambda t: "T"),
                         "T [track.workers#error worker 0] Traceback (most recent call last):\n")


class DaemonWorkersTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 120

    @inlineCallbacks
    def test_a_daemon_with_workers_logs_theirs_to_its_logfile(self) -> Any:
        dsn = reset_mysql()
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        port = free_port()
        logfile, pidfile = os.path.join(cwd, "track.log"), os.path.join(cwd, "track.pid")
        # Without -n: twistd daemonizes, and its stdout is /dev/null.
        subprocess.run([*TWISTD, f"--pidfile={pidfile}", f"--logfile={logfile}", "track",
                        "--dsn", MYSQL_DSN_TEXT, "--http", f"127.0.0.1:{port}", "--workers", "2"],
                       cwd=cwd, env=child_env(), check=True, timeout=60)
        self.addCleanup(stop_daemon, pidfile)

        def log_text() -> str:
            try:
                with open(logfile, encoding="utf-8") as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        yield wait_until(lambda: len(re.findall(r"#info worker \d\] track listening", log_text())) == 2,
                         "both workers to log that they listen")
        response = yield treq.post(f"http://127.0.0.1:{port}/api/1.0/track/user/", data=b"ProfileID=1&Region=eu",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"},
                                   pool=HTTPConnectionPool(reactor, persistent=False))
        yield response.content()
        self.assertEqual(response.code, 201)
        with open(pidfile) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        yield wait_until(lambda: "all workers stopped" in log_text(), "the parent to stop")
        self.assertEqual(len(re.findall(r"worker \d\] all events flushed", log_text())), 2)
        self.assertEqual(execute(dsn, "SELECT COUNT(*) FROM UserEvent"), [(1,)])
