"""`--workers N`: N reactor processes sharing one listening socket.

One Python process runs on one core (the GIL), so the parent binds the
socket, migrates the schema once, and starts N `twistd track` children that
inherit the socket the way systemd socket activation passes it (fd 3,
LISTEN_FDS/LISTEN_PID) and adopt it with Twisted's `systemd:` endpoint.  Each
child has its own pool, buffers and spool directory.  Its command line is
generated from the parent's Config (track/run/config.py: each option is
handed on, changed for the child, or kept by the parent), its DSN comes
through a pipe (track/run/secrets.py).  The parent restarts a
child that dies (with backoff); it passes SIGHUP on to every child (each
reads the events file again); on SIGTERM, it passes it on and waits until
every child has drained and exited.

Children log as JSON lines into a pipe; the parent publishes each event to
its own observers, so worker logs land wherever the parent's go (`--logfile`,
`--logger`, a daemon's twistd.log), each marked with its worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from types import FrameType
from typing import Any

from prometheus_client.multiprocess import mark_process_dead
from twisted.application.service import Service
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import LogLevel, eventFromJSON, globalLogPublisher
from twisted.python.failure import Failure

from track.admin.shared import remove_worker
from track.logs import Logger
from track.metrics import MULTIPROC_ENV
from track.run.config import Config, Worker, metrics_directory, worker_args
from track.run.leftovers import QUIET_SECONDS, state_prefix, sweep
from track.run.listen import server_endpoint
from track.run.secrets import DSN_ENV, WORKER_DSN_FD, pipe_holding
from track.run.service import ListenError
from track.spool.lock import DirectoryLock

log = Logger(namespace="track.workers")

LISTEN_FD = 3  # where systemd (and so Twisted's systemd: endpoint) expects it
RESTART_FIRST = 0.5
RESTART_MAX = 30.0
STABLE_SECONDS = 30.0
# The child: ask Linux for SIGTERM when the parent (its pid filled in) dies,
# and check it has not died already; make LISTEN_PID its own pid before
# Twisted reads it; then twistd.  SIGTERM is twistd's own clean shutdown:
# stop accepting, answer the requests in progress, flush to the database or
# the spool, exit.
_BOOT = (
    "import os, sys; from track.run.orphan import die_with_parent; die_with_parent({parent}); "
    "os.environ['LISTEN_PID'] = str(os.getpid()); "
    "os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_FDNAMES'] = 'track'; "
    "from twisted.scripts.twistd import run; run()"
)


def bind(description: str) -> socket.socket:
    """A listening socket for a `tcp:` or `tcp6:` endpoint description, as
    Twisted parses it (serverFromString); ValueError for any other."""
    from twisted.internet import reactor

    try:
        endpoint: object = server_endpoint(reactor, description)
    except Exception:  # endpoint parsers raise all sorts
        endpoint = None
    if not isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
        raise ValueError(f"--workers needs a TCP --http (a port or host:port), not {description!r}")
    port, interface, backlog = tcp_address(endpoint)
    # The address family as Twisted's own TCP port chooses it.
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((interface or "0.0.0.0", port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def tcp_address(endpoint: TCP4ServerEndpoint | TCP6ServerEndpoint) -> tuple[int, str, int]:
    """The port, interface and backlog Twisted parsed from a `tcp:`/`tcp6:`
    description.  The endpoint keeps them in private attributes (it offers
    no public accessor); test_run_workers fails loudly if they change."""
    return endpoint._port, endpoint._interface, endpoint._backlog


def child_argv(config: Config, worker: Worker) -> list[str]:
    """A worker's command line: twistd, then its options, generated from
    the parent's Config (track/run/config.py says how each field goes)."""
    boot = _BOOT.format(parent=worker.parent)
    return [sys.executable, "-c", boot, "-n", "--pidfile=", "--logger=track.logs.json_stdout", "track",
            *worker_args(config, worker)]


def worker_event(line: bytes, index: int, now: float) -> dict[str, Any]:
    """A child's log line as a log event of the parent's, marked with its
    worker.  A line that is not a JSON event (a crash before logging began)
    is kept as text, timed `now`."""
    text = line.decode("utf-8", "replace").strip("\x1e\r\n")
    try:
        event = eventFromJSON(text)
        if not isinstance(event, dict):
            raise ValueError("not an event")
    except ValueError:
        event = {"log_format": "{line}", "line": text, "log_level": LogLevel.error,
                 "log_namespace": "track.workers", "log_time": now}
    level = event.get("log_level")
    event["log_system"] = "{}#{} worker {}".format(
        event.get("log_namespace", "-"), getattr(level, "name", "-"), index)
    event["track_worker"] = index
    return event


class _Child(ProcessProtocol):
    def __init__(self, pool: WorkerPool, index: int, started: float) -> None:
        self.pool = pool
        self.index = index
        self.started = started
        self.ended: Deferred[None] = Deferred()
        self.pid: int | None = None  # kept: the transport forgets it when the process ends
        self._partial = {1: b"", 2: b""}

    @property
    def process(self) -> IProcessTransport:
        """The child's process (set by spawnProcess, before anything else)."""
        assert self.transport is not None
        return self.transport

    def childDataReceived(self, fd: int, data: bytes) -> None:
        *lines, self._partial[fd] = (self._partial.get(fd, b"") + data).split(b"\n")
        for line in lines:
            if line.strip(b"\x1e\r\n "):
                globalLogPublisher(worker_event(line, self.index, self.pool.reactor.seconds()))

    def processEnded(self, reason: Failure) -> None:
        for fd in self._partial:  # a last line without its newline
            self.childDataReceived(fd, b"\n")
        self.ended.callback(None)
        self.pool.child_ended(self, reason)


class WorkerPool(Service):
    """The parent of `--workers N`.  Its `state` directory is where the
    workers report (track/admin/shared.py) and keep their metrics files
    (`metrics`, prometheus_client's multiprocess mode): what /metrics,
    /healthz and the admin listener read to speak for the whole service."""

    def __init__(self, config: Config, reactor: Any, feed: bool = False) -> None:
        self.count = config.workers
        self.feed = feed  # the admin page is on: workers keep their latest events
        # Named now (the admin listener reads it), made in startService: after
        # twistd has dropped privileges (--uid), so the workers can write in it.
        self.state = tempfile.mkdtemp(prefix=state_prefix())
        os.rmdir(self.state)
        self.metrics_dir = metrics_directory(self.state)
        self.description = config.endpoint
        self.config = config
        self.reactor = reactor
        self.shutdown_timeout = config.shutdown_timeout
        self.children: dict[int, _Child] = {}
        self.sock: socket.socket | None = None
        self.spool_lock: DirectoryLock | None = None  # the top spool directory's, held while running
        self._delay = {i: RESTART_FIRST for i in range(self.count)}
        # Per worker index: how many times it was started again, and when
        # last (Unix time), for the admin page.
        self.restarts: dict[int, tuple[int, float]] = {}
        self._spawned: set[int] = set()
        self._previous_hup: Any = None

    def privilegedStartService(self) -> None:
        try:
            self.sock = bind(self.description)
        except OSError as e:  # taken since makeService checked it
            raise ListenError(f"cannot listen on {self.description}: {e.strerror or e}") from None
        host, port = self.sock.getsockname()[:2]
        log.info("track listening on http://{host}:{port} with {n} workers", host=host, port=port,
                 n=self.count)
        super().privilegedStartService()  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        os.mkdir(self.state, 0o700)  # fails if anything took the name meanwhile
        # Those of parents killed before they could remove theirs.
        sweep(os.path.dirname(self.state), max(QUIET_SECONDS, 2 * (self.shutdown_timeout + 10)))
        os.mkdir(self.metrics_dir)
        super().startService()  # type: ignore[no-untyped-call]
        for index in range(self.count):
            self._spawn(index)
        self._previous_hup = signal.signal(signal.SIGHUP, self._hup)

    def _hup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP: each worker reads the events file again (track.run.reload)."""
        self.reactor.callFromThread(self.pass_on_hup)

    def pass_on_hup(self) -> None:
        log.info("SIGHUP: passed on to {n} workers", n=len(self.children))
        for child in list(self.children.values()):
            try:
                child.process.signalProcess("HUP")
            except ProcessExitedAlready:
                pass  # restarted soon, reading the file afresh

    def _spawn(self, index: int) -> None:
        assert self.sock is not None
        child = _Child(self, index, self.reactor.seconds())
        worker = Worker(index, self.state, os.getpid(), self.feed)
        argv = child_argv(self.config, worker)
        # Unbuffered, so each log line reaches the parent when it is written.
        # Not TRACK_DSN: the DSN goes through a pipe.  PROMETHEUS_MULTIPROC_DIR:
        # prometheus_client's own switch to its multiprocess mode.
        env = {**{k: v for k, v in os.environ.items() if k != DSN_ENV}, "PYTHONUNBUFFERED": "1",
               MULTIPROC_ENV: worker.metrics_dir}
        fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r", LISTEN_FD: self.sock.fileno()}
        dsn = self.config.dsn_text
        pipe = None if dsn is None else pipe_holding(dsn)  # the DSN, in a pipe only this child gets
        if pipe is not None:
            fds[WORKER_DSN_FD] = pipe
        try:
            self.reactor.spawnProcess(child, argv[0], argv, env=env, childFDs=fds)
        finally:
            if pipe is not None:
                os.close(pipe)
        child.pid = child.process.pid
        self.children[index] = child
        if index in self._spawned:
            self.restarts[index] = (self.restarts.get(index, (0, 0.0))[0] + 1, time.time())
        self._spawned.add(index)
        log.info("worker {i} started (pid {pid})", i=index, pid=child.process.pid)

    def child_ended(self, child: _Child, reason: Failure) -> None:
        if self.children.get(child.index) is child:
            del self.children[child.index]
        # Its counters stay in the sums (totals never go back); its gauges
        # and its reports go.
        if child.pid is not None:
            mark_process_dead(child.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        remove_worker(self.state, child.index)
        if not self.running:
            return
        if self.reactor.seconds() - child.started > STABLE_SECONDS:
            self._delay[child.index] = RESTART_FIRST  # it ran fine for a while
        delay = self._delay[child.index]
        self._delay[child.index] = min(delay * 2, RESTART_MAX)
        log.warn("worker {i} exited ({why}); restarting in {d}s", i=child.index,
                 why=reason.getErrorMessage(), d=delay)
        self.reactor.callLater(delay, self._respawn, child.index)

    def _respawn(self, index: int) -> None:
        if self.running and index not in self.children:
            self._spawn(index)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        signal.signal(signal.SIGHUP, self._previous_hup if self._previous_hup is not None else signal.SIG_DFL)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        children = list(self.children.values())
        for child in children:
            child.process.signalProcess("TERM")
        if self.sock is not None:
            # The workers hold the socket too: once each has accepted what
            # was queued and stopped listening, it closes, and a client
            # that connects during the drain is refused at once instead of
            # waiting in a queue nobody reads.
            self.sock.close()
            self.sock = None
        waiting = DeferredList([c.ended for c in children])
        waiting.addTimeout(self.shutdown_timeout + 10, self.reactor)
        try:
            await waiting
        except Exception:
            for child in children:
                if not child.ended.called:
                    child.process.signalProcess("KILL")
        shutil.rmtree(self.state, ignore_errors=True)
        log.info("all workers stopped")
