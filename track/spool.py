"""The durable spool: where acknowledged events wait while the database is down.

Segments are append-only files of records, each `length | crc32 | payload`.
All file work happens on one dedicated thread, so appends keep their order,
and each append (one flush's worth of events) is written and fsync'd at once
before its Deferred fires: one fsync per flush, not per event.  A record cut
short by a crash fails its length or checksum; reading stops there, so
everything before it is replayed and the torn tail is skipped.  Every start
writes to a new segment, never after a possibly torn tail.  Counters live on
the reactor thread.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from track.events import EventType
from track.logs import Logger

log = Logger(namespace="track.spool")

DEFAULT_MAX_BYTES = 1024**3
SEGMENT_BYTES = 16 * 1024**2
_HEADER = struct.Struct(">II")  # payload length, crc32 of payload
_SUFFIX = ".spool"


class SpoolFull(Exception):
    """The spool is at --spool-max-bytes; the client should retry later."""


def encode(event: EventType, row: Sequence[Any]) -> bytes:
    """One event as a record: [kind, [column values...]] in JSON."""
    values = [
        str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v
        for v in row
    ]
    payload = json.dumps([event.name, values], separators=(",", ":")).encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes, event_types: dict[str, EventType]) -> tuple[EventType, tuple[Any, ...]]:
    kind, values = json.loads(payload)
    event = event_types[kind]
    money = {i for i, f in enumerate(event.fields) if f.type == "money"}
    created = len(event.columns) - 1
    row = tuple(
        Decimal(v) if i in money and v is not None else datetime.fromisoformat(v) if i == created else v
        for i, v in enumerate(values)
    )
    return event, row


@dataclass
class Chunk:
    """Records read from a segment, and where the next read starts."""

    payloads: list[bytes]
    offset: int
    done: bool
    torn: bool = False


def read_records(path: str, offset: int, limit: int) -> Chunk:
    """Up to `limit` whole, checksummed records from `offset` on."""
    payloads: list[bytes] = []
    with open(path, "rb") as f:
        f.seek(offset)
        while len(payloads) < limit:
            header = f.read(_HEADER.size)
            if not header:
                return Chunk(payloads, offset, done=True)
            if len(header) < _HEADER.size:
                return Chunk(payloads, offset, done=True, torn=True)
            length, crc = _HEADER.unpack(header)
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return Chunk(payloads, offset, done=True, torn=True)
            payloads.append(payload)
            offset += _HEADER.size + length
    return Chunk(payloads, offset, done=False)


class Spool:
    """Append-only checksummed segments under `directory`, at most `max_bytes`."""

    def __init__(self, directory: str, max_bytes: int, reactor: Any) -> None:
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        self._reactor = reactor
        self._pool = ThreadPool(1, 1, name="track-spool")
        self.bytes = 0
        self.events = 0
        self._sizes: dict[str, list[int]] = {}  # path -> [events, bytes]
        # Owned by the spool thread:
        self._file: Any = None
        self._path = ""
        self._next = 0

    # -- start and stop (reactor thread) ---------------------------------

    def open(self) -> None:
        """Find segments left by earlier runs (blocking: called at start-up)."""
        os.makedirs(self.directory, exist_ok=True)
        for path in self._segment_paths():
            events, torn = 0, False
            offset = 0
            while True:
                chunk = read_records(path, offset, 10_000)
                events += len(chunk.payloads)
                offset = chunk.offset
                if chunk.done:
                    torn = chunk.torn
                    break
            size = os.path.getsize(path)
            self._sizes[path] = [events, size]
            self.events += events
            self.bytes += size
            if torn:
                log.warn("segment {path}: torn record at byte {at} skipped; {n} events before it kept",
                         path=path, at=offset, n=events)
        paths = self._segment_paths()
        self._next = int(os.path.basename(paths[-1])[: -len(_SUFFIX)]) + 1 if paths else 1
        if self.events:
            log.info("spool holds {n} events ({b} bytes) from an earlier run", n=self.events, b=self.bytes)

    def start(self) -> None:
        """Start the spool's thread (with the service, so that a start-up
        that fails earlier leaves no thread behind)."""
        self._pool.start()

    def close(self) -> None:
        """Finish queued writes, close the segment, stop the thread (idempotent)."""
        if self._pool.started and not self._pool.joined:
            self._pool.callInThread(self._close_file)
            self._pool.stop()

    def _segment_paths(self) -> list[str]:
        names = sorted(n for n in os.listdir(self.directory) if n.endswith(_SUFFIX))
        return [os.path.join(self.directory, n) for n in names]

    # -- appending ----------------------------------------------------------

    def append(self, records: Sequence[bytes]) -> Deferred[None]:
        """Write and fsync `records`; fires once they are on disk.

        Fails at once with SpoolFull when they would pass max_bytes.
        """
        size = sum(map(len, records))
        if self.bytes + size > self.max_bytes:
            return fail(SpoolFull())
        self.bytes += size
        self.events += len(records)
        d = deferToThreadPool(self._reactor, self._pool, self._write, b"".join(records))
        d.addCallbacks(self._written, self._not_written, (len(records), size), None, (len(records), size))
        return d

    def _written(self, path: str, count: int, size: int) -> None:
        entry = self._sizes.setdefault(path, [0, 0])
        entry[0] += count
        entry[1] += size

    def _not_written(self, failure: Any, count: int, size: int) -> Any:
        self.bytes -= size
        self.events -= count
        log.error("spool write failed: {e}", e=failure.getErrorMessage())
        return failure

    def _write(self, data: bytes) -> str:
        """Spool thread: append and fsync; return the segment written."""
        if self._file is None:
            self._path = os.path.join(self.directory, f"{self._next:012d}{_SUFFIX}")
            self._next += 1
            self._file = open(self._path, "ab")
            _fsync_dir(self.directory)  # the new name must survive a crash too
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        path = self._path
        if self._file.tell() >= SEGMENT_BYTES:
            self._close_file()
        return path

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- replaying ------------------------------------------------------------

    def sealed(self) -> Deferred[list[str]]:
        """Close the segment being written (later appends start a new one)
        and list every segment, oldest first, for replay."""
        def seal() -> list[str]:
            self._close_file()
            return self._segment_paths()

        return deferToThreadPool(self._reactor, self._pool, seal)

    def read(self, path: str, offset: int, limit: int = 500) -> Deferred[Chunk]:
        return deferToThreadPool(self._reactor, self._pool, read_records, path, offset, limit)

    def remove(self, path: str) -> Deferred[None]:
        """Delete a replayed segment and stop counting it."""
        def unlink() -> None:
            os.unlink(path)
            _fsync_dir(self.directory)

        d = deferToThreadPool(self._reactor, self._pool, unlink)
        d.addCallback(self._removed, path)
        return d

    def _removed(self, _: None, path: str) -> None:
        events, size = self._sizes.pop(path, [0, 0])
        self.events -= events
        self.bytes -= size


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
