"""A worker of `--workers N` dies with its parent.

A parent killed with -9 cannot pass SIGTERM on, and workers left running
would keep the listening socket and their spools: the supervisor's restart
would find the address in use.  So each worker asks Linux to send it
SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), before twistd starts,
and, wherever that is not available, watches its parent's pid once a second.
SIGTERM (or the watcher's stop) is twistd's clean shutdown: stop accepting,
answer the requests in progress, flush to the database or the spool, exit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from track.logs import Logger

log = Logger(namespace="track.workers")

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """Called first thing in a worker, with the pid of the parent that
    started it: SIGTERM when the parent dies (Linux); exit at once if it
    died before this could be asked."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # ParentWatch still notices, within a second
    if os.getppid() != parent:
        raise SystemExit(f"track worker: parent {parent} exited before this worker started")


class ParentWatch(Service):
    """Stops the reactor (twistd's clean shutdown) once the parent is gone:
    the fallback where PR_SET_PDEATHSIG does not exist."""

    def __init__(self, parent: int, reactor: Any, interval: float = WATCH_SECONDS,
                 getppid: Any = os.getppid) -> None:
        self.parent_pid = parent
        self.reactor = reactor
        self.getppid = getppid
        self._loop = LoopingCall(self._check)
        self._loop.clock = reactor
        self.interval = interval

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._loop.running:
            self._loop.stop()

    def _check(self) -> None:
        if self.getppid() != self.parent_pid:
            log.warn("parent {pid} is gone; shutting down", pid=self.parent_pid)
            self._loop.stop()
            self.reactor.stop()
