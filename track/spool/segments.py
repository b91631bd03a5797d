"""The durable spool: where acknowledged events wait while the database is down.

Segments are append-only files of checksummed records (see records.py).  All
file work happens on one dedicated thread, so appends keep their order, and
each append (one flush's worth of events) is written and fsync'd before its
Deferred fires: one fsync per flush, not per event.

Real disks fail: a write or fsync that fails (no space, I/O error) cuts the
segment back to its last whole record and seals it; later appends go to a
new one, and the spool reports itself unwritable (so /readyz says 503) until
a check, retried with backoff, can start a new segment again.  Every start
writes to a new segment, never after a possibly torn tail.  A sealed segment
gets a small `.count` file, so opening a large spool reads no records; only
a segment a crash left unsealed is scanned.  Counters live on the reactor
thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from track.logs import Logger
from track.spool.deadletters import DeadLetters
from track.spool.disk import fsync_dir
from track.spool.lock import DirectoryLock
from track.spool.records import SEGMENT_MAGIC, Segment, parse_segment
from track.types import Backoff

log = Logger(namespace="track.spool")

DEFAULT_MAX_BYTES = 1024**3
SEGMENT_BYTES = 16 * 1024**2
_SUFFIX = ".spool"
_COUNT_SUFFIX = ".count"
_PROGRESS_SUFFIX = ".replayed"  # records of a segment already replayed, should a replay stop midway
CHECK_FIRST = 0.5  # seconds between checks of an unwritable spool, doubling
CHECK_MAX = 10.0
_P = ParamSpec("_P")
_R = TypeVar("_R")


class SpoolFull(Exception):
    """The spool is at --spool-max-bytes; the client should retry later."""


class SpoolBroken(Exception):
    """The spool's disk refused a write (no space, I/O error); nothing of
    this append was acknowledged."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _count_path(segment: str) -> str:
    return segment[: -len(_SUFFIX)] + _COUNT_SUFFIX


def _progress_path(segment: str) -> str:
    return segment[: -len(_SUFFIX)] + _PROGRESS_SUFFIX


def replayed_records(segment: str) -> int:
    """How many records of `segment` an earlier replay got through (0: none)."""
    try:
        with open(_progress_path(segment), "rb") as f:
            return int(f.read().strip() or b"0")
    except (OSError, ValueError):
        return 0


def read_segment(path: str) -> Segment:
    with open(path, "rb") as f:
        return parse_segment(f.read())


class Spool:
    """Append-only checksummed segments under `directory`, at most `max_bytes`."""

    def __init__(self, directory: str, max_bytes: int, reactor: Any, lock: DirectoryLock | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        self._reactor = reactor
        self._pool = ThreadPool(1, 1, name="track-spool")
        self.dead_letters = DeadLetters(self.directory)
        self._lock = lock or DirectoryLock(self.directory)  # taken by open() unless already held
        self.bytes = 0
        self.events = 0
        self.error = ""  # why the last write failed; "" while writable
        self._sizes: dict[str, list[int]] = {}  # path -> [events, bytes]
        self._check: IDelayedCall | None = None
        self._check_backoff = Backoff(CHECK_FIRST, CHECK_MAX)
        self._recounting = False  # a dead-letter recount is under way
        # Owned by the spool thread:
        self._fd: int | None = None
        self._path = ""
        self._size = 0  # bytes of the segment being written
        self._count = 0  # records in it
        self._next = 0

    @property
    def writable(self) -> bool:
        return not self.error

    # -- start and stop (reactor thread) ---------------------------------

    def open(self) -> None:
        """Find segments left by earlier runs (blocking: called at start-up).

        Reads only the counts of sealed segments; a segment a crash left
        unsealed is scanned once and sealed.  Raises SpoolLocked when
        another process has the directory (see lock.py)."""
        if not self._lock.held:
            self._lock.acquire()
        for path in self._segment_paths():
            size = os.path.getsize(path)
            events = self._sealed_count(path, size)
            if events is None:
                segment = read_segment(path)
                events = len(segment.payloads)
                if segment.torn_at is not None:
                    log.warn("segment {path}: torn record at byte {at} skipped; {n} events before it kept",
                             path=path, at=segment.torn_at, n=events)
                self._write_count(path, events, size)
            events = max(events - replayed_records(path), 0)
            self._sizes[path] = [events, size]
            self.events += events
            self.bytes += size
        paths = self._segment_paths()
        self._next = int(os.path.basename(paths[-1])[: -len(_SUFFIX)]) + 1 if paths else 1
        self.dead_letters.count()
        if self.events:
            log.info("spool holds {n} events ({b} bytes) from an earlier run", n=self.events, b=self.bytes)

    @staticmethod
    def _sealed_count(path: str, size: int) -> int | None:
        try:
            with open(_count_path(path)) as f:
                count = json.load(f)
            return int(count["events"]) if count["bytes"] == size else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _write_count(path: str, events: int, size: int) -> None:
        """Best effort: without it the segment is scanned at the next start."""
        target = _count_path(path)
        try:
            with open(target + ".tmp", "w") as f:
                json.dump({"events": events, "bytes": size}, f)
            os.replace(target + ".tmp", target)
        except OSError as e:
            log.debug("could not write {path}: {e}", path=target, e=e)

    def start(self) -> None:
        """Start the spool's thread (with the service, so that a start-up
        that fails earlier leaves no thread behind)."""
        self._pool.start()

    def close(self) -> None:
        """Finish queued writes, seal the segment, stop the thread (idempotent)."""
        if self._check is not None and self._check.active():
            self._check.cancel()
        if self._pool.started and not self._pool.joined:
            self._pool.callInThread(self._seal)
            self._pool.stop()
        self._lock.release()

    def _segment_paths(self) -> list[str]:
        names = sorted(n for n in os.listdir(self.directory) if n.endswith(_SUFFIX))
        return [os.path.join(self.directory, n) for n in names]

    def _run(self, f: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_R]:
        return deferToThreadPool(self._reactor, self._pool, f, *args, **kwargs)

    # -- appending ----------------------------------------------------------

    def append(self, records: Sequence[bytes]) -> Deferred[str]:
        """Write and fsync `records`; fires with the segment's path once
        they are on disk.

        Fails at once with SpoolFull when they would pass max_bytes, and
        with SpoolBroken when the disk refuses them."""
        size = sum(map(len, records))
        if self.bytes + size > self.max_bytes:
            return fail(SpoolFull())
        self.bytes += size
        self.events += len(records)
        d = self._run(self._write, b"".join(records), len(records))
        return d.addCallbacks(
            self._written, self._not_written, callbackArgs=(len(records), size), errbackArgs=(len(records), size)
        )

    def _written(self, result: tuple[str, int], count: int, size: int) -> str:
        path, grown = result  # grown: size, plus a new segment's header
        self.bytes += grown - size
        entry = self._sizes.setdefault(path, [0, 0])
        entry[0] += count
        entry[1] += grown
        self._writable_again()
        return path

    def _not_written(self, failure: Failure, count: int, size: int) -> Failure:
        """Uncount what was not written; a disk's refusal (OSError) is
        raised again as SpoolBroken, anything else passes through."""
        self.bytes -= size
        self.events -= count
        if not isinstance(failure.value, OSError):
            return failure
        if self.writable:
            log.error("spool write failed ({e}); the segment is sealed, and events are refused (503) "
                      "until the spool can be written again", e=failure.getErrorMessage())
        self.error = failure.getErrorMessage()
        self._schedule_check()
        raise SpoolBroken(self.error)

    def _write(self, data: bytes, count: int) -> tuple[str, int]:
        """Spool thread: append and fsync; return the segment written and
        how many bytes it grew by."""
        grown = 0
        if self._fd is None:
            self._new_segment()
            grown = self._size
        assert self._fd is not None
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError:
            self._abandon()
            raise
        self._size += len(data)
        self._count += count
        path = self._path
        if self._size >= SEGMENT_BYTES:
            self._seal()
        return path, grown + len(data)

    def _new_segment(self) -> None:
        """Spool thread: a new segment with its header, fsync'd with its name."""
        path = os.path.join(self.directory, f"{self._next:012d}{_SUFFIX}")
        self._next += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, SEGMENT_MAGIC)
            os.fsync(fd)
            fsync_dir(self.directory)  # the new name must survive a crash too
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        self._fd, self._path, self._size, self._count = fd, path, len(SEGMENT_MAGIC), 0

    def _abandon(self) -> None:
        """After a failed write: cut the segment back to its last whole
        record (shrinking needs no free space), close it, and never append
        to it again.  What ftruncate cannot cut is a torn tail to readers."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass
        self._seal()

    def _seal(self) -> None:
        """Spool thread: close the segment being written; the next append
        starts a new one."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
            self._write_count(self._path, self._count, self._size)

    # -- when the disk refused a write -----------------------------------------

    def _schedule_check(self) -> None:
        if self._check is None or not self._check.active():
            self._check = self._reactor.callLater(self._check_backoff.next(), self._check_writable)

    def _check_writable(self) -> None:
        """Can a new segment be started (header written and fsync'd)?"""
        def check() -> tuple[str, int]:
            if self._fd is not None:
                return self._path, 0
            self._new_segment()
            return self._path, self._size

        d = self._run(check)
        d.addCallbacks(self._written, self._still_broken, callbackArgs=(0, 0))

    def _still_broken(self, failure: Failure) -> None:
        log.debug("spool still unwritable: {e}", e=failure.getErrorMessage())
        self.error = failure.getErrorMessage()
        self._schedule_check()

    def _writable_again(self) -> None:
        if self.error:
            log.info("the spool can be written again")
            self.error = ""
        self._check_backoff.reset()
        if self._check is not None and self._check.active():
            self._check.cancel()
        self._check = None

    # -- replaying ------------------------------------------------------------

    def sealed(self) -> Deferred[list[str]]:
        """Seal the segment being written (later appends start a new one)
        and list every segment, oldest first, for replay."""
        def seal() -> list[str]:
            self._seal()
            return self._segment_paths()

        return self._run(seal)

    def read(self, path: str) -> Deferred[Segment]:
        """Every whole record of one segment (at most about SEGMENT_BYTES)."""
        return self._run(read_segment, path)

    def dead_letter(self, entries: Sequence[dict[str, Any]]) -> Deferred[None]:
        """Append dead letters durably, in order with the spool's other work."""
        return self._run(self.dead_letters.append, entries)

    def dead_letter_counts(self) -> tuple[int, int]:
        """(events, corrupt bytes) in the dead-letter area as last counted,
        without touching a file: the reactor thread asks.  Asking starts a
        recount on the spool's thread (a resend may have taken some away)
        unless one is under way."""
        if not self._recounting:
            self._recounting = True

            def done(result: object) -> None:
                self._recounting = False

            self._run(self.dead_letters.count).addBoth(done)
        return self.dead_letters.counted

    def keep_corrupt(self, path: str, regions: Sequence[tuple[int, bytes]]) -> Deferred[None]:
        def keep() -> None:
            for offset, data in regions:
                self.dead_letters.keep_corrupt(path, offset, data)

        return self._run(keep)

    def replayed(self, path: str) -> Deferred[int]:
        """Records of `path` an earlier replay already stored or dead-lettered."""
        return self._run(replayed_records, path)

    def mark_replayed(self, path: str, records: int) -> Deferred[None]:
        """Remember that the first `records` of `path` are done, so a replay
        stopped midway (a shutdown, a crash) resumes after them instead of
        dead-lettering its refused rows twice.  Best effort, rewritten in
        place (which a full disk allows): without it the segment is merely
        replayed from its start, and MessageIDs keep that exact."""
        def write() -> None:
            try:
                fd = os.open(_progress_path(path), os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    os.pwrite(fd, b"%020d\n" % records, 0)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                log.debug("could not note replay progress of {path}: {e}", path=path, e=e)

        return self._run(write)

    def remove(self, path: str) -> Deferred[None]:
        """Delete a replayed segment and stop counting it."""
        def unlink() -> None:
            os.unlink(path)
            for extra in (_count_path(path), _progress_path(path)):
                try:
                    os.unlink(extra)
                except FileNotFoundError:
                    pass
            fsync_dir(self.directory)

        d = self._run(unlink)
        d.addCallback(self._removed, path)
        return d

    def _removed(self, _: None, path: str) -> None:
        events, size = self._sizes.pop(path, [0, 0])
        self.events -= events
        self.bytes -= size
