"""Where events wait until the collector acknowledges them: in memory, or in
an SQLite file that outlives the process (`queue_path`).

Each event gets a rising sequence number.  Sending threads `take` events in
order (each event once), and `remove` them when they are settled; what was
taken but not removed is still counted (`len`) and still in the file.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import Protocol


class QueueInUse(RuntimeError):
    """Another Client (in this process or another) has this queue_path open."""


class Queue(Protocol):
    def __len__(self) -> int: ...
    def put(self, line: str) -> int: ...
    def put_many(self, lines: list[str]) -> None: ...
    def take(self, count: int) -> list[tuple[int, str]]: ...
    taken: int  # every event up to this sequence number was taken
    def remove(self, done: set[int]) -> None: ...
    def oldest(self) -> int | None: ...
    def newest(self) -> int | None: ...
    def close(self) -> None: ...


class MemoryQueue:
    def __init__(self) -> None:
        self._items: dict[int, str] = {}  # insertion order is sequence order
        self._next = 0
        self.taken = 0  # every sequence number up to this one was taken

    def __len__(self) -> int:
        return len(self._items)

    def put(self, line: str) -> int:
        self._next += 1
        self._items[self._next] = line
        return self._next

    def put_many(self, lines: list[str]) -> None:
        start = self._next + 1
        self._next += len(lines)
        self._items.update(zip(range(start, self._next + 1), lines, strict=True))

    def take(self, count: int) -> list[tuple[int, str]]:
        first, last = self.taken + 1, min(self._next, self.taken + count)
        items = self._items
        batch = [(seq, items[seq]) for seq in range(first, last + 1)]
        self.taken = max(self.taken, last)
        return batch

    def remove(self, done: set[int]) -> None:
        for seq in done:
            self._items.pop(seq, None)

    def oldest(self) -> int | None:
        return next(iter(self._items), None)

    def newest(self) -> int | None:
        return self._next if self._items else None

    def close(self) -> None:
        pass


class SQLiteQueue:
    """The queue in an SQLite file: each `put` is committed before `track()`
    returns, so a process killed (even by SIGKILL) leaves its events for the
    next Client on the same path.  WAL with synchronous=NORMAL: a commit
    survives the process, not necessarily a power cut.

    The file is locked (flock on PATH.lock) for as long as the queue is open:
    two Clients sending one file would send its events twice."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise QueueInUse(f"queue_path {path} is in use by another track Client (it holds {path}.lock); "
                             "give each Client (and each process) a queue_path of its own") from None
        except BaseException:
            os.close(self._lock)
            raise
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS track_queue (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " line TEXT NOT NULL)")
        self._count: int = self._db.execute("SELECT COUNT(*) FROM track_queue").fetchone()[0]
        self.taken = 0

    def __len__(self) -> int:
        return self._count

    def put(self, line: str) -> int:
        seq = self._db.execute("INSERT INTO track_queue (line) VALUES (?)", (line,)).lastrowid
        self._count += 1
        assert seq is not None
        return seq

    def put_many(self, lines: list[str]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO track_queue (line) VALUES (?)", [(x,) for x in lines])
        self._count += len(lines)

    def take(self, count: int) -> list[tuple[int, str]]:
        batch: list[tuple[int, str]] = self._db.execute(
            "SELECT seq, line FROM track_queue WHERE seq > ? ORDER BY seq LIMIT ?", (self.taken, count)).fetchall()
        if batch:
            self.taken = batch[-1][0]
        return batch

    def remove(self, done: set[int]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM track_queue WHERE seq = ?", [(s,) for s in done])
        self._count -= len(done)

    def oldest(self) -> int | None:
        seq: int | None = self._db.execute("SELECT MIN(seq) FROM track_queue").fetchone()[0]
        return seq

    def newest(self) -> int | None:
        seq: int | None = self._db.execute("SELECT MAX(seq) FROM track_queue").fetchone()[0]
        return seq

    def close(self) -> None:
        self._db.close()
        if self._lock >= 0:
            os.close(self._lock)  # the lock goes with it
            self._lock = -1

    def forget(self) -> None:
        """In a forked child: drop the parent's file without touching it (the
        connection and the lock are the parent's)."""
        if self._lock >= 0:
            os.close(self._lock)  # the child's copy only: the parent keeps its lock
            self._lock = -1
