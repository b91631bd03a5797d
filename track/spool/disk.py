"""Durable file writes for the spool: data and the names that hold it fsync'd."""

from __future__ import annotations

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
