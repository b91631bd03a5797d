"""The state directories (`/tmp/track-workers-<pid>-*`) of parents that
were killed (`kill -9`, OOM) before they could remove theirs: swept by the
next parent, so a supervisor restarting a crashing service does not fill a
memory-backed /tmp with prometheus_client's metric files.

A directory is taken only when its name carries a pid that is no longer
alive, it belongs to this user, and nothing in it changed for a while (the
workers of a killed parent drain for up to --shutdown-timeout, writing
there, before they exit)."""

from __future__ import annotations

import os
import re
import shutil
import time

from track.logs import Logger

log = Logger(namespace="track.workers")

PREFIX = "track-workers-"
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)-")
QUIET_SECONDS = 600.0  # at least: unchanged this long after its parent died


def state_prefix() -> str:
    """The prefix of this parent's state directory: names its pid."""
    return f"{PREFIX}{os.getpid()}-"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def newest_change(path: str) -> float:
    """The latest mtime of `path` and everything under it."""
    latest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                latest = max(latest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    return latest


def sweep(directory: str, quiet: float = QUIET_SECONDS, now: float | None = None) -> list[str]:
    """Remove the stale state directories in `directory`; return them."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        m = _NAME.match(entry.name)
        if m is None or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(m.group(1))
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or pid == os.getpid() or alive(pid):
                continue
            if now - newest_change(entry.path) < quiet:
                continue
        except OSError:
            continue  # gone meanwhile, or not ours to read
        shutil.rmtree(entry.path, ignore_errors=True)
        log.info("removed {path}: the state of a parent (pid {pid}) that ended without removing it",
                 path=entry.path, pid=pid)
        removed.append(entry.path)
    return removed
