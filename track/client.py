"""A Python client for track that keeps the collector's promise to the end:
every event it returns a MessageID for is stored exactly once, or reported.

    from track.client import Client
    client = Client("http://collector.example:8080")
    client.track("user", {"ProfileID": 42, "Region": "eu"})  # -> its MessageID

`track()` checks the event with the server's own field tables and queues it;
a background thread sends the queue through the batch endpoint and retries
outages (transport errors, 408, 429, 5xx) with backoff, always with the same
MessageIDs, which the server deduplicates.  Standard library only, besides
`track.fields` (itself standard library only), so it can be vendored: copy
`track/__init__.py`, `track/client.py` and `track/fields/`.

`python -m track.client import URL FILE...` imports NDJSON files (see
`track.client_import`).
"""

from __future__ import annotations

import atexit
import bisect
import email.utils
import functools
import gzip as gzip_codec
import http.client
import json
import logging
import math
import random
import sqlite3
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

from track.fields.kinds import EVENT_TYPES, InvalidEvent, parse_event
from track.fields.values import JSONNumber

log = logging.getLogger("track.client")

BATCH_PATH = "/api/1.0/track/batch/"
MAX_BATCH = 1000  # the server's default --max-batch
MAX_BATCH_BYTES = 512 * 1024  # half the server's default --max-batch-body
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
FULL_LOG_INTERVAL = 60.0
MAX_GIVEN_UP = 10_000  # given-up events remembered for the next flush()
_EPOCH = datetime(1970, 1, 1)

ErrorHandler = Callable[[dict[str, Any], dict[str, Any]], object]


class InvalidEventError(InvalidEvent):
    """`track()` was given a bad event; `.fields` maps each bad field to why.
    A ValueError, like the server's own InvalidEvent."""

    def __init__(self, kind: object, fields: Mapping[str, str]) -> None:
        super().__init__(fields)
        self.kind = kind

    def __str__(self) -> str:
        return f"invalid {self.kind} event: " + "; ".join(f"{k}: {v}" for k, v in self.fields.items())


class QueueFull(RuntimeError):
    """`track()` refused an event: `max_queue` events are waiting already.
    Nothing was queued; the events already queued are all kept."""


def _json_value(value: object) -> tuple[object, object]:
    """(what goes on the wire, what the server will parse from it)."""
    if isinstance(value, JSONNumber):  # a number kept exact (the importer reads JSON so)
        return str(value), value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        text = format(value, "f")
        return text, JSONNumber(text)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value, JSONNumber(json.dumps(value))  # 1.0 too: the server reads it as a number
    if value is None or isinstance(value, bool | int | str):
        return value, value
    raise ValueError(f"cannot be sent as JSON (a {type(value).__name__})")


def encode_event(kind: str, fields: Mapping[str, object]) -> tuple[str, str]:
    """One event as the NDJSON line the batch endpoint reads, and its
    MessageID (the caller's, or a new UUID).  Raises InvalidEventError naming
    every field the server would refuse, checked by the server's own tables
    on exactly the values the server will read."""
    event = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if event is None:
        raise InvalidEventError(kind, {"type": f"must be one of {', '.join(EVENT_TYPES)}"})
    untyped: object = fields  # callers may not be type-checked
    if not isinstance(untyped, Mapping):
        raise TypeError(f"fields must be a mapping, not {type(fields).__name__}")
    errors: dict[str, str] = {}
    wire: dict[str, object] = {}
    seen: dict[str, object] = {}
    for name, value in untyped.items():
        if not isinstance(name, str):
            errors[repr(name)] = "field names must be strings"
            continue
        try:
            wire[name], seen[name] = _json_value(value)
        except ValueError as e:
            errors[name] = str(e)
    if wire.get("MessageID") in (None, ""):
        # The collector makes up a new MessageID for a missing or empty one on
        # every send, so a resend would be stored again: one of ours, kept.
        wire["MessageID"] = seen["MessageID"] = str(uuid.uuid4())
    try:
        parse_event(event, seen, "", _EPOCH)
    except InvalidEvent as e:
        errors.update(e.fields)
    if errors:
        raise InvalidEventError(kind, errors)
    text = json.dumps(wire, ensure_ascii=False, separators=(",", ":"))
    return f'{{"type":"{kind}",{text[1:]}', str(seen["MessageID"])


class _Queue(Protocol):
    """Events waiting to be acknowledged, each with a rising sequence number."""

    def __len__(self) -> int: ...
    def put(self, line: str) -> int: ...
    def head(self, count: int) -> list[tuple[int, str]]: ...
    def remove(self, done: set[int]) -> None: ...
    def oldest(self) -> int | None: ...
    def newest(self) -> int | None: ...
    def close(self) -> None: ...


class MemoryQueue:
    def __init__(self) -> None:
        self._items: deque[tuple[int, str]] = deque()
        self._next = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, line: str) -> int:
        self._next += 1
        self._items.append((self._next, line))
        return self._next

    def head(self, count: int) -> list[tuple[int, str]]:
        return [self._items[i] for i in range(min(count, len(self._items)))]

    def remove(self, done: set[int]) -> None:
        """`done` is always among the head: only the head is touched."""
        kept = []
        while done and self._items:
            item = self._items.popleft()
            if item[0] in done:
                done = done - {item[0]}
            else:
                kept.append(item)
        self._items.extendleft(reversed(kept))

    def oldest(self) -> int | None:
        return self._items[0][0] if self._items else None

    def newest(self) -> int | None:
        return self._items[-1][0] if self._items else None

    def close(self) -> None:
        pass


class SQLiteQueue:
    """The queue in an SQLite file: each `put` is committed before `track()`
    returns, so a process killed (even by SIGKILL) leaves its events for the
    next Client on the same path.  WAL with synchronous=NORMAL: a commit
    survives the process, not necessarily a power cut."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS track_queue (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " line TEXT NOT NULL)")
        self._count: int = self._db.execute("SELECT COUNT(*) FROM track_queue").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def put(self, line: str) -> int:
        seq = self._db.execute("INSERT INTO track_queue (line) VALUES (?)", (line,)).lastrowid
        self._count += 1
        assert seq is not None
        return seq

    def head(self, count: int) -> list[tuple[int, str]]:
        return self._db.execute("SELECT seq, line FROM track_queue ORDER BY seq LIMIT ?", (count,)).fetchall()

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


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    """Exponential from BACKOFF_MIN to BACKOFF_MAX, with jitter so many
    clients coming back after an outage do not come back in step."""
    ceiling = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(attempt - 1, 16))
    return max(BACKOFF_MIN, random.uniform(ceiling / 2, ceiling))


def _close_at_exit(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        if client.queue_path is None:
            if client.pending:
                log.warning("track client: sending %d events before exit; interrupt to abandon them", client.pending)
            client.close()
        else:  # they are safe in the file: send while the collector answers, no longer
            client._exiting = True
            client.close(client.timeout)


class Client:
    """Queues events and sends them in batches from a background thread.

    `on_error(event, error)` is called (from that thread) for each event the
    collector refused for good: `event` is what was sent (with "type" and
    "MessageID"), `error` the collector's reason with its `status`.
    """

    def __init__(self, url: str, *, batch_size: int = 100, flush_interval: float = 0.5, max_queue: int = 10000,
                 gzip: bool = True, timeout: float = 10, queue_path: str | None = None,
                 on_error: ErrorHandler | None = None, max_retries: int | None = None) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http:// or https:// with a host, not {url!r}")
        path = parts.path.rstrip("/")
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        # The collector's base URL, its API prefix or the batch endpoint itself.
        api = BATCH_PATH.rstrip("/").removesuffix("/batch")
        path = path.removesuffix("/batch").removesuffix(api)
        self._path = path + BATCH_PATH
        self.batch_size, self.flush_interval, self.max_queue = batch_size, flush_interval, max_queue
        self.gzip, self.timeout, self.queue_path = gzip, timeout, queue_path
        self.on_error, self.max_retries = on_error, max_retries
        self._queue: _Queue = SQLiteQueue(queue_path) if queue_path else MemoryQueue()
        self._cond = threading.Condition()  # guards the queue and every field below
        self._waiting_since = time.monotonic()  # when the oldest unsent event was queued
        self._flush_to = 0  # send now everything up to this sequence number
        self._limit = batch_size  # smaller after a 413
        self._closing = self._abandoned = False
        self._exiting = False  # at exit with queue_path: stop at the first failure
        self._full_logged_at = -math.inf  # a warning at most every FULL_LOG_INTERVAL s while refusing
        self._refused = 0
        # Sequence numbers of events given up (refused, or out of retries)
        # that no flush() has reported yet, ascending; bounded (see _settle).
        self._given_up: list[int] = []
        self._connection: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="track-client", daemon=True)
        self._thread.start()
        self._exit_hook = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Events queued and not yet acknowledged (or refused)."""
        with self._cond:
            return len(self._queue)

    def track(self, kind: str, fields: Mapping[str, object]) -> str:
        """Check and queue one event; its MessageID.  Raises InvalidEventError
        (a ValueError) naming each bad field, or QueueFull; then nothing is
        queued."""
        line, message_id = encode_event(kind, fields)
        with self._cond:
            if self._closing:
                raise RuntimeError("this track Client is closed")
            count = len(self._queue)
            if count >= self.max_queue:
                self._refused += 1
                now = time.monotonic()
                if now >= self._full_logged_at + FULL_LOG_INTERVAL:
                    log.warning("track client queue full (%d events): %d new events refused since the last warning",
                                count, self._refused)
                    self._full_logged_at, self._refused = now, 0
                raise QueueFull(f"{count} events are waiting to be sent (max_queue); this one was not queued")
            self._queue.put(line)
            if count == 0:
                self._waiting_since = time.monotonic()
                self._cond.notify_all()
            elif count + 1 >= self._limit:
                self._cond.notify_all()
        return message_id

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked before this call is acknowledged or
        given up (refused, reported to on_error).  True only if every one of
        them was stored; False if one was given up since the last flush() that
        said so, if `timeout` seconds pass first, or if the client was closed
        with events unsent."""
        self._not_from_on_error("flush")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._thread.is_alive():
                return len(self._queue) == 0 and self._none_given_up(None)
            target = self._queue.newest()
            if target is None:
                return self._none_given_up(None)
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while (oldest := self._queue.oldest()) is not None and oldest <= target:
                if self._abandoned or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._none_given_up(target)

    def _not_from_on_error(self, what: str) -> None:
        """on_error runs on the sending thread: waiting there for that very
        thread to send would never end."""
        if threading.current_thread() is self._thread:
            raise RuntimeError(f"Client.{what}() cannot be called from on_error (it runs on the sending thread)")

    def _none_given_up(self, upto: int | None) -> bool:
        """Whether no event up to sequence `upto` (any, if None) was given up
        since a flush() last said so; forgets the ones it looked at.  Called
        with the lock held."""
        cut = len(self._given_up) if upto is None else bisect.bisect_right(self._given_up, upto)
        seen = self._given_up[:cut]
        del self._given_up[:cut]
        return not seen

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting at most `timeout` seconds) and stop.
        Run at exit too: without queue_path it waits as long as it takes, as
        unsent events would be lost; with queue_path, at most `timeout`
        seconds and only while the collector answers."""
        self._not_from_on_error("close")
        atexit.unregister(self._exit_hook)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            if self._thread.is_alive():
                self._abandoned = True
                self._cond.notify_all()
                kept = f"kept in {self.queue_path}" if self.queue_path else "lost"
                log.error("track client closed with %d events unsent (%s)", len(self._queue), kept)
            else:
                self._queue.close()

    # The sending thread.

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._send(batch)
        except Exception:
            log.exception("track client: the sending thread failed; events stay queued")
        finally:
            if self._connection is not None:
                self._connection.close()
            with self._cond:
                self._cond.notify_all()

    def _next_batch(self) -> list[tuple[int, str]] | None:
        """The next events to send, once there are enough, or they have
        waited flush_interval, or a flush or close wants them; None to stop."""
        with self._cond:
            while True:
                if self._abandoned:
                    return None
                count = len(self._queue)
                if count == 0:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                oldest = self._queue.oldest()
                wait = self._waiting_since + self.flush_interval - time.monotonic()
                if (self._closing or count >= self._limit or wait <= 0
                        or (oldest is not None and oldest <= self._flush_to)):
                    return self._queue.head(self._limit)
                self._cond.wait(wait)

    def _settle(self, batch: list[tuple[int, str]], done: set[int], refused: dict[int, dict[str, Any]]) -> None:
        """Report the refused events, then take them and the acknowledged ones
        off the queue (in that order, so a flush() returns after on_error)."""
        lines = dict(batch)
        for seq, error in refused.items():
            event = json.loads(lines[seq])
            log.error("track refused event %s (%s): %s", event.get("MessageID"), event.get("type"), error)
            if self.on_error is not None:
                try:
                    self.on_error(event, error)
                except Exception:
                    log.exception("track client: on_error raised")
        with self._cond:
            self._queue.remove(done | set(refused))
            for seq in refused:
                bisect.insort(self._given_up, seq)
            if len(self._given_up) > MAX_GIVEN_UP:  # nobody calls flush(): the newest still fail the next one
                del self._given_up[: len(self._given_up) - MAX_GIVEN_UP]
            self._cond.notify_all()

    def _send(self, batch: list[tuple[int, str]]) -> None:
        payload = "\n".join(line for _, line in batch).encode()
        while len(payload) > MAX_BATCH_BYTES and len(batch) > 1:
            batch = batch[: len(batch) // 2]
            payload = "\n".join(line for _, line in batch).encode()
        if self.gzip:
            payload = gzip_codec.compress(payload, compresslevel=5)
        attempt = 0
        while True:
            status, headers, body, failure = self._post(payload)
            seqs = [seq for seq, _ in batch]
            if failure is None and 200 <= status < 300:
                return self._settle(batch, set(seqs), {})
            answer = _json_object(body)
            reason = str(answer.get("error") or failure or f"HTTP {status}")
            if status == 400 and (named := _refused_indexes(answer, len(batch))):
                # Nothing of the batch was stored: the named events go, the
                # rest are sent again (in the next batch, same MessageIDs).
                return self._settle(batch, set(), {seqs[i]: {"status": 400, **e} for i, e in named.items()})
            if status == 413 and len(batch) > 1:
                self._limit = max(1, len(batch) // 2)
                return None
            if failure is None and status not in (408, 429) and status < 500:
                return self._settle(batch, set(), {s: {"status": status, "error": reason} for s in seqs})
            if self._exiting:
                with self._cond:
                    log.warning("track client: %d events stay in %s for the next Client (%s)",
                                len(self._queue), self.queue_path, reason)
                    self._abandoned = True
                    self._cond.notify_all()
                return None
            attempt += 1
            if self.max_retries is not None and attempt > self.max_retries:
                error = {"status": status or None, "error": f"gave up after {attempt} attempts: {reason}"}
                return self._settle(batch, set(), dict.fromkeys(seqs, error))
            delay = retry_after(headers.get("Retry-After")) if headers else None
            delay = backoff(attempt) if delay is None else delay
            log.warning("track client: %d events not sent (%s); retrying in %.1f s", len(batch), reason, delay)
            with self._cond:
                end = time.monotonic() + delay
                while not self._abandoned and (left := end - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._abandoned:
                    return None

    def _post(self, payload: bytes) -> tuple[int, http.client.HTTPMessage | None, bytes, Exception | None]:
        """One POST of the batch: (status, headers, body, None), or (0, None,
        b"", the error) when no answer came.  A kept-alive connection the
        server had closed meanwhile is retried at once on a new one."""
        headers = {"Content-Type": "application/x-ndjson", "User-Agent": "track-client"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        for _ in range(2):
            reused = self._connection is not None
            if self._connection is None:
                kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._connection = kind(self._host, self._port, timeout=self.timeout)
            try:
                self._connection.request("POST", self._path, body=payload, headers=headers)
                response = self._connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as e:
                self._connection.close()
                self._connection = None
                if reused and isinstance(e, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
                    continue
                return 0, None, b"", e
            if response.will_close:
                self._connection.close()
                self._connection = None
            return response.status, response.headers, body, None
        raise AssertionError("unreachable")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _refused_indexes(answer: dict[str, Any], size: int) -> dict[int, dict[str, Any]]:
    """The batch's 400 names its bad events by index: index -> reason."""
    named: dict[int, dict[str, Any]] = {}
    for entry in answer.get("events") or ():
        if isinstance(entry, dict) and type(entry.get("index")) is int and 0 <= entry["index"] < size:
            named[entry["index"]] = {k: v for k, v in entry.items() if k != "index"}
    return named


if __name__ == "__main__":
    import sys

    from track.client_import import main

    sys.exit(main())
