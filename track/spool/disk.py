"""Durable file writes for the spool: data and the names that hold it fsync'd."""

from __future__ import annotations

import fcntl
import os


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: str) -> None:
    if not os.path.isdir(directory):
        os.makedirs(directory, exist_ok=True)
        fsync_dir(os.path.dirname(directory))


def write_durably(path: str, data: bytes, mode: str = "ab") -> None:
    """Append (or write) `data` and fsync it and, if new, its name."""
    directory = os.path.dirname(path)
    ensure_dir(directory)
    new = not os.path.exists(path)
    with open(path, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(directory)


def append_exclusively(path: str, data: bytes) -> None:
    """write_durably's append, under flock on the file: a `rename_exclusively`
    of it (the resend command taking the dead letters) waits for the append,
    and an append that finds its file renamed meanwhile opens the new one,
    so no line lands in a file already taken."""
    directory = os.path.dirname(path)
    ensure_dir(directory)
    while True:
        new = not os.path.exists(path)
        with open(path, "ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                still = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                still = False
            if not still:
                continue  # renamed away while we waited: append to the new one
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if new:
            fsync_dir(directory)
        return


def rename_exclusively(path: str, target: str) -> None:
    """Rename `path` to `target` once no append_exclusively is writing it."""
    with open(path, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        os.rename(path, target)
        fsync_dir(os.path.dirname(path))
