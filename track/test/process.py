"""`twistd -n track` as a child process, for end-to-end tests."""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Sequence

import track
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(track.__file__)))
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
_LISTENING = re.compile(rb"track listening on (http://[0-9.]+:[0-9]+)")


def child_env() -> dict[str, str]:
    """The environment for a child that imports this very checkout of track
    (and finds its plugin in twisted/plugins beside it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
    return env


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


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


class TwistdTrack(ProcessProtocol):
    """Starts `twistd -n track ARGS`; `ready` fires with the base URL."""

    def __init__(self, args: Sequence[str], cwd: str) -> None:
        self.output = b""
        self.ready: Deferred[str] = Deferred()
        self.ended: Deferred[Exception] = Deferred()
        self.transport: Any = None
        argv = [*TWISTD, "-n", "--pidfile=", "track", *args]
        reactor.spawnProcess(self, argv[0], argv, env=child_env(), path=cwd)  # type: ignore[attr-defined]
        self.ready.addTimeout(60, reactor)  # type: ignore[arg-type]

    def outReceived(self, data: bytes) -> None:
        self.output += data
        m = _LISTENING.search(self.output)
        if m and not self.ready.called:
            self.ready.callback(m.group(1).decode())

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError("twistd exited before listening:\n" + self.output.decode(errors="replace")))
        self.ended.callback(reason.value)  # ProcessDone or ProcessTerminated

    def signal(self, name: str) -> None:
        self.transport.signalProcess(name)

    def stop(self) -> Deferred[Exception]:
        """SIGTERM, then wait for the exit (bounded)."""
        if not self.ended.called:
            self.signal("TERM")
        self.ended.addTimeout(60, reactor)  # type: ignore[arg-type]
        return self.ended
