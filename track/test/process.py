"""`twistd -n track` as a child process, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

import track
from track.test.rawhttp import RawClient, connect, request

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(track.__file__)))
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
_LISTENING = re.compile(rb"track listening on (http://[0-9.]+:[0-9]+)")
_ADMIN = re.compile(rb"admin page on (http://[0-9.]+:[0-9]+)/")
ADMIN_ANY_PORT = ("--admin-http", "tcp:0:interface=127.0.0.1")  # what admin_base reads
EXIT_TIMEOUT = 60.0  # the longest a stopped twistd may take to exit


def port_of(base: str) -> int:
    """The port of a base URL as `ready` gives it ("http://127.0.0.1:PORT")."""
    return int(base.rsplit(":", 1)[1])


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = EXIT_TIMEOUT) -> None:
    """Poll `condition()` every 20 ms until it is true; fail after `timeout` s."""
    clock: Any = reactor
    deadline = clock.seconds() + timeout
    while not condition():
        if clock.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await deferLater(clock, 0.02, lambda: None)


class HalfSentPost:
    """A POST on its own connection that has sent its headers (with `Expect:
    100-continue`) and the first half of its body, and has been answered
    `100 Continue`: proof that the server has read the headers and so has a
    request in progress.  `finish()` sends the rest; `closed` fires with all
    the server sent once it closes the connection."""

    def __init__(self, client: RawClient, rest: bytes) -> None:
        self.client = client
        self.rest = rest
        self.closed = client.closed

    def finish(self) -> None:
        self.client.send(self.rest)

    def statuses(self) -> list[int]:
        return self.client.statuses()


async def begin_post(port: int, path: str, body: bytes, chunked: bool = False) -> HalfSentPost:
    """Connect, send the headers and half of `body`, and wait (bounded) for
    the server's 100 Continue; a HalfSentPost.  A connection the server closes
    instead fails here."""
    client = await connect(port)
    half = len(body) // 2
    if chunked:
        head = request(path, b"", {"Expect": "100-continue", "Transfer-Encoding": "chunked"})
        first = head + b"%x\r\n%s\r\n" % (half, body[:half])
        rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:])
    else:
        whole = request(path, body, {"Expect": "100-continue"})
        first, rest = whole[: len(whole) - (len(body) - half)], whole[len(whole) - (len(body) - half):]
    client.send(first)
    await wait_until(lambda: b"\r\n\r\n" in client.received or client.closed.called,
                     "the server's 100 Continue")
    if not client.received.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        raise AssertionError(f"the server did not take the request in: {client.received[:300]!r}")
    return HalfSentPost(client, rest)


def child_env() -> dict[str, str]:
    """The environment for a child that imports this very checkout of track
    (and finds its plugin in twisted/plugins beside it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
    return env


async def refused_at_start(cwd: str, dsn: str) -> tuple[int, bytes]:
    """Run `twistd -n track --dsn DSN` in `cwd`, expecting it to refuse the
    DSN and exit: its exit code and all it printed."""
    from twisted.internet.utils import getProcessOutputAndValue

    out, err, code = await getProcessOutputAndValue(
        TWISTD[0], [*TWISTD[1:], "--pidfile=", "-n", "track", "--http", "tcp:0", "--dsn", dsn],
        env=child_env(), path=cwd)
    return code, out + err


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """A process's child pids (none once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def accepted_connections(pid: int, port: int) -> int:
    """How many established TCP connections to local `port` process `pid`
    holds: the requests it (not a sibling worker) has accepted."""
    sockets = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            sockets.add(int(target[len("socket:["):-1]))
    return len(sockets & _established_inodes(port))


def _established_inodes(port: int) -> set[int]:
    """Socket inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()  # sl local rem st queues timer retr uid timeout inode
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


class TwistdTrack(ProcessProtocol):
    """Starts `twistd -n track ARGS`; `ready` fires with the base URL.

    Give it `--http tcp:0:interface=127.0.0.1` and read the port from
    `ready` (see `port_of`): the kernel picks a free port when twistd binds,
    so no other process can take it between a pick and a bind.

    `prefix` runs it under another command, e.g. `prlimit --nofile=512 --`.
    """

    def __init__(self, args: Sequence[str], cwd: str, prefix: Sequence[str] = ()) -> None:
        self.output = b""
        self.ready: Deferred[str] = Deferred()
        self.ended: Deferred[Exception] = Deferred()
        self.exit_reason: Exception | None = None
        self._waiting: list[Deferred[Exception]] = []
        self.transport: Any = None
        argv = [*prefix, *TWISTD, "-n", "--pidfile=", "track", *args]
        reactor.spawnProcess(self, argv[0], argv, env=child_env(), path=cwd)
        self.ready.addTimeout(60, reactor)

    def outReceived(self, data: bytes) -> None:
        self.output += data
        m = _LISTENING.search(self.output)
        if m and not self.ready.called:
            self.ready.callback(m.group(1).decode())

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError("twistd exited before listening:\n" + self.output.decode(errors="replace")))
        exit_reason = reason.value  # ProcessDone or ProcessTerminated
        assert isinstance(exit_reason, Exception), exit_reason
        self.exit_reason = exit_reason
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:  # not timed out already
                d.callback(exit_reason)
        self.ended.callback(exit_reason)

    @property
    def admin_base(self) -> str:
        """The admin listener's base URL (started with ADMIN_ANY_PORT), as
        it logged it: where /healthz shows every detail."""
        found = _ADMIN.findall(self.output)
        if not found:
            raise AssertionError("no admin listener in the output (start it with ADMIN_ANY_PORT)")
        return str(found[-1].decode())

    async def admin(self, timeout: float = EXIT_TIMEOUT) -> str:
        """admin_base, once the admin listener has logged where it is (it
        may start listening just after the public one)."""
        await wait_until(lambda: bool(_ADMIN.search(self.output)), "the admin listener", timeout)
        return self.admin_base

    @property
    def pid(self) -> int | None:
        """The process id while it runs; None once it has exited."""
        return None if self.transport is None else self.transport.pid

    def signal(self, name: str) -> bool:
        """Send SIGname; False (and no error) if the process has already exited.

        Whether it has exited is only known by trying: a check first and a
        signal after would race with the exit."""
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            return False
        return True

    def wait(self, timeout: float = EXIT_TIMEOUT) -> Deferred[Exception]:
        """Fires with the exit reason once the process has exited, or fails
        with TimeoutError after `timeout` seconds.  Any number may wait."""
        if self.exit_reason is not None:
            return succeed(self.exit_reason)
        d: Deferred[Exception] = Deferred()
        self._waiting.append(d)
        d.addTimeout(timeout, reactor)
        return d

    async def stop(self, timeout: float = EXIT_TIMEOUT) -> Exception:
        """SIGTERM, then wait for the exit (bounded): the exit reason.

        A twistd that does not exit in time is killed, with its children
        (`--workers`), and the stop fails: a clean exit was the promise."""
        self.signal("TERM")
        try:
            reason = await self.wait(timeout)
        except TimeoutError:
            pid = self.pid
            for child in children(pid) if pid is not None else []:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.signal("KILL")
            await self.wait(timeout)
            raise AssertionError(f"twistd did not exit within {timeout}s of SIGTERM; killed it:\n"
                                 + self.output.decode(errors="replace")[-4000:]) from None
        return reason
