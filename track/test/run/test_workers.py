"""`--workers 2`: two reactor processes on one socket, restarted when they
die, drained on SIGTERM.

The parent listens on `tcp:0` and logs the port the kernel gave it ("track
listening on http://127.0.0.1:PORT with 2 workers"); the workers inherit
that very socket, so no port is picked in advance (and raced for)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import treq
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, eventAsJSON, formatEventAsClassicLogText
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.run.workers import worker_event
from track.test.mariadb import MYSQL_SKIP
from track.test.process import (
    TWISTD,
    HalfSentPost,
    TwistdTrack,
    accepted_connections,
    begin_post,
    child_env,
    children,
    port_of,
    wait_until,
)
from track.test.support import execute, mysql_dsn_text, reset_mysql

_STARTED = re.compile(rb"worker (\d) started \(pid (\d+)\)")
EACH_WORKER = 4  # requests in progress on each worker when SIGTERM arrives
MAX_CONNECTIONS = 200  # a bound on connections opened to reach EACH_WORKER on both
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}


class WorkersTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    def pids(self) -> dict[int, int]:
        return {int(w): int(p) for w, p in _STARTED.findall(self.proc.output)}

    async def test_two_workers_serve_restart_and_drain(self) -> None:
        dsn = reset_mysql(self)
        port = await self.start()
        pool = HTTPConnectionPool(reactor, persistent=False)
        url = f"http://127.0.0.1:{port}/api/1.0/track/user/"

        async def post(n: int) -> int:
            response = await treq.post(url, data=f"ProfileID={n}&Region=eu&MessageID=w-{n}".encode(),
                                       pool=pool, headers=FORM)
            await response.content()
            code: int = response.code
            return code

        codes = []
        for n in range(40):
            codes.append(await post(n))
        first = self.pids()
        os.kill(first[0], signal.SIGKILL)
        await wait_until(lambda: self.pids().get(0) not in (None, first[0]), "worker 0 to be restarted")
        await wait_until(lambda: self.proc.output.count(b"track listening on") >= 4, "the new worker to listen")
        for n in range(40, 80):
            codes.append(await post(n))
        self.assertEqual(set(codes), {201})
        self.assertTrue(self.proc.signal("TERM"))
        await self.proc.wait()
        self.assertEqual(self.proc.output.count(b"all events flushed"), 2)
        self.assertIn(b"all workers stopped", self.proc.output)
        rows = execute(dsn, "SELECT ProfileID, MessageID FROM UserEvent ORDER BY ProfileID")
        self.assertEqual(rows, [(n, f"w-{n}") for n in range(80)])
        for pid in self.pids().values():
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)

    async def test_requests_in_progress_on_each_worker_at_sigterm_are_answered_201_and_stored(self) -> None:
        """Requests whose headers and half their bodies each worker has read
        when the parent gets SIGTERM are finished after both workers have
        begun shutting down: each gets its 201 and its row, none is dropped."""
        dsn = reset_mysql(self)
        port = await self.start()
        pids = self.pids()
        posts: list[HalfSentPost] = []

        def held() -> list[int]:
            return [accepted_connections(pids[w], port) for w in sorted(pids)]

        # The kernel hands each connection to whichever worker accepts first:
        # open connections until both hold EACH_WORKER requests in progress.
        while min(held()) < EACH_WORKER:
            self.assertLess(len(posts), MAX_CONNECTIONS, f"one worker took (almost) every connection: {held()}")
            n = len(posts)
            body = f"ProfileID={n}&Region=eu&MessageID=wterm-{n}&Referrer=worker-sigterm-{n}".encode()
            posts.append(await begin_post(port, "/api/1.0/track/user/", body, chunked=n % 2 == 1))
        self.assertEqual(sum(held()), len(posts))
        self.assertTrue(self.proc.signal("TERM"))
        await wait_until(lambda: self.proc.output.count(b"shutting down: answering requests in progress") == 2,
                         "both workers to begin shutting down")
        for post in posts:
            post.finish()
        await wait_until(lambda: all(p.closed.called for p in posts), "every answer")
        self.assertEqual([p.statuses() for p in posts], [[100, 201]] * len(posts))
        await self.proc.wait()
        self.assertIn(b"all workers stopped", self.proc.output)
        rows = execute(dsn, "SELECT ProfileID, MessageID, Referrer FROM UserEvent ORDER BY ProfileID")
        self.assertEqual(rows, [(n, f"wterm-{n}", f"worker-sigterm-{n}") for n in range(len(posts))])

    async def test_a_client_connecting_during_the_drain_is_refused_not_left_waiting(self) -> None:
        """While the workers finish the requests in progress, the listening
        socket is closed everywhere (the parent's copy too), so a new client
        is refused at once instead of waiting in a queue nobody reads."""
        reset_mysql(self)
        port = await self.start()
        pids = self.pids()
        posts: list[HalfSentPost] = []
        while min(accepted_connections(pids[w], port) for w in sorted(pids)) < 1:
            self.assertLess(len(posts), MAX_CONNECTIONS)
            n = len(posts)
            posts.append(await begin_post(port, "/api/1.0/track/user/",
                                          f"ProfileID={n}&Region=eu&MessageID=drain-{n}".encode()))
        self.assertTrue(self.proc.signal("TERM"))
        await wait_until(lambda: self.proc.output.count(b"shutting down: answering requests in progress") == 2,
                         "both workers to begin shutting down")

        def connect() -> str:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                try:
                    s.connect(("127.0.0.1", port))
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    return "answered: " + s.recv(64).decode(errors="replace")
                except ConnectionRefusedError:
                    return "refused"
                except TimeoutError:
                    return "left waiting"

        self.assertEqual(await deferToThread(connect), "refused")
        for post in posts:
            post.finish()
        await wait_until(lambda: all(p.closed.called for p in posts), "every answer")
        self.assertEqual([p.statuses() for p in posts], [[100, 201]] * len(posts))

    async def start(self) -> int:
        """`twistd track --workers 2` on a port the kernel picks; its port
        once both workers listen."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.proc = TwistdTrack(
            ["--dsn", mysql_dsn_text(self), "--http", "tcp:0:interface=127.0.0.1", "--workers", "2"], cwd)
        self.addCleanup(self.proc.stop)
        base = await self.proc.ready  # the parent's "track listening on http://127.0.0.1:PORT with 2 workers"
        self.assertIn(f"track listening on {base} with 2 workers".encode(), self.proc.output)
        await wait_until(lambda: len(self.pids()) == 2 and self.proc.output.count(b"track listening on") >= 3,
                         "two workers listening")
        return port_of(base)


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

    async def test_a_daemon_with_workers_logs_theirs_to_its_logfile(self) -> None:
        dsn = reset_mysql(self)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        logfile, pidfile = os.path.join(cwd, "track.log"), os.path.join(cwd, "track.pid")
        # Without -n: twistd daemonizes, and its stdout is /dev/null.
        subprocess.run([*TWISTD, f"--pidfile={pidfile}", f"--logfile={logfile}", "track",
                        "--dsn", mysql_dsn_text(self), "--http", "tcp:0:interface=127.0.0.1", "--workers", "2"],
                       cwd=cwd, env=child_env(), check=True, timeout=60)
        self.addCleanup(stop_daemon, pidfile)

        def log_text() -> str:
            try:
                with open(logfile, encoding="utf-8") as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        await wait_until(lambda: len(re.findall(r"#info worker \d\] track listening", log_text())) == 2,
                         "both workers to log that they listen")
        (port,) = map(int, re.findall(r"track listening on http://127\.0\.0\.1:(\d+) with 2 workers", log_text()))
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/user/", data=b"ProfileID=1&Region=eu",
                                   headers=FORM,
                                   pool=HTTPConnectionPool(reactor, persistent=False))
        await response.content()
        self.assertEqual(response.code, 201)
        with open(pidfile) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        await wait_until(lambda: "all workers stopped" in log_text(), "the parent to stop")
        self.assertEqual(len(re.findall(r"worker \d\] all events flushed", log_text())), 2)
        self.assertEqual(execute(dsn, "SELECT COUNT(*) FROM UserEvent"), [(1,)])
