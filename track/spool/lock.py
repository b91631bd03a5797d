"""One process per spool directory, enforced with an advisory lock.

Two processes appending to one spool would interleave their segments and
replay each other's events; a collector restarted beside workers a killed
parent left behind would do just that.  So whoever writes a spool holds
`fcntl.flock` on `<directory>/lock` for as long as it runs; the kernel lets
go when the process exits, however it exits.  The file holds the holder's
pid, so the one that finds it locked can say who has it.
"""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = "lock"
_PID_WIDTH = 16


class SpoolLocked(Exception):
    """Another process holds the directory's lock; the message names both."""


class DirectoryLock:
    """A held lock on a directory (see the module); `release` lets it go."""

    def __init__(self, directory: str, name: str = LOCK_FILE, what: str = "spool directory") -> None:
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, name)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock, or raise SpoolLocked naming the holder's pid.
        Makes the directory if it is missing; never blocks."""
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise SpoolLocked(f"{self.what} {self.directory} is in use by {who}") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            # Fixed width, in place: a full spool disk has no page for a
            # longer file, and the pid is only for the message above.
            os.pwrite(fd, f"{os.getpid():<{_PID_WIDTH - 1}}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the kernel drops the flock with the last descriptor
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, _PID_WIDTH, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
