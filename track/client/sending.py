"""The Client: checks and queues events, and lives through forks, SIGTERM
and the exit; its background threads (track.client.delivery) send the
queue in batches, each thread on a kept-alive connection."""

from __future__ import annotations

import atexit
import bisect
import contextlib
import functools
import logging
import math
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping

from track.client.delivery import Delivery, ErrorHandler
from track.client.events import InvalidEventError, line, now_ms, prepare, renew_message_ids
from track.client.queue import MemoryQueue, Queue, SQLiteQueue
from track.client.rules import Rules, builtin_rules, rules_from_openapi
from track.client.transport import Connection, Endpoint, fetch_document

log = logging.getLogger("track.client")

MAX_BATCH = 1000  # the server's default --max-batch
FULL_LOG_INTERVAL = 60.0
RULES_RETRY = 60.0  # seconds between tries to fetch the collector's document
# Batches in flight at once: the collector commits up to 4 at a time (its
# MariaDB pool), and with 3 one of its writers always waited for this client.
CONNECTIONS = 4
# close() waits for the sending threads this long at a time, never unbounded:
# a signal (Ctrl-C, SIGTERM) that lands on another thread, or just before the
# main thread blocks in a lock, only sets a flag the main thread reads when it
# wakes; an unbounded join never wakes, and the process hung at exit.
JOIN_SLICE = 0.1


class QueueFull(RuntimeError):
    """`track()` refused an event: `max_queue` events are waiting already.
    Nothing was queued; the events already queued are all kept."""


_clients: weakref.WeakSet[Client] = weakref.WeakSet()
_inherited: list[object] = []  # a forked child's copies of its parent's files: never closed, never used
_terminated = False  # SIGTERM arrived: the exit does not wait for the collector longer than `timeout`
_fork_hook = False  # registered with the first Client


def _after_fork_in_child() -> None:
    renew_message_ids()  # the parent's prefix is the parent's
    for client in list(_clients):
        client._forked()


def _on_sigterm(signum: int, frame: object) -> None:
    """Exit as SIGTERM would (status 143), but through atexit, so the
    clients report what they could not send."""
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise SystemExit(128 + signal.SIGTERM)


# Signals the kernel may hand to any thread of the process.  A Python handler
# runs only on the main thread, and only when it wakes: delivered to a sending
# thread, Ctrl-C did not wake the main thread from time.sleep() or a join.
# The sending threads block them, so the kernel gives them to another thread.
_FAULTS = {getattr(signal, name) for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGTRAP",
                                              "SIGSYS") if hasattr(signal, name)}


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Threads started in this block take no asynchronous signal (POSIX only)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - _FAULTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _close_at_exit(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is None:
        return
    if client.queue_path is None and not _terminated:
        try:
            if client.pending:
                log.warning("track client: sending %d events before exit; interrupt to abandon them",
                            client.pending)
            client.close()
        except KeyboardInterrupt:
            if not client._queue_closed:  # interrupted before close() could say so
                client._abandon("interrupted")
    else:  # safe in the file, or the process was told to stop: send while the collector answers, no longer
        client._exiting = True
        client.close(client.timeout)


class Client(Delivery):
    """Queues events and sends them in batches from background threads.

    `on_error(event, error)` is called (from a sending thread) for each event
    the collector refused for good: `event` is what was sent (with "type" and
    "MessageID"), `error` the collector's reason with its `status`.
    `anonymous=True` asks the collector to store no client address (RemoteIP
    empty) for every event this Client sends.  `sent_at=False` sends no SentAt:
    each Timestamp is stored as given, not corrected for this clock (the import).
    """

    def __init__(self, url: str, *, batch_size: int = 100, flush_interval: float = 0.5, max_queue: int = 10000,
                 gzip: bool = True, timeout: float = 10, queue_path: str | None = None,
                 on_error: ErrorHandler | None = None, max_retries: int | None = None,
                 connections: int = CONNECTIONS, handle_sigterm: bool = True, anonymous: bool = False,
                 sent_at: bool = True) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.url = url
        self._endpoint = Endpoint(url)
        self.batch_size, self.flush_interval, self.max_queue = batch_size, flush_interval, max_queue
        self.gzip, self.timeout, self.queue_path = gzip, timeout, queue_path
        self.on_error, self.max_retries, self.connections = on_error, max_retries, connections
        self.anonymous = anonymous  # Track-Anonymous: 1 on every request: no client address kept
        self.sent_at = sent_at  # Track-Sent-At on every request: Timestamps corrected for this clock
        self._rules = Rules(builtin_rules(), "built in")
        self._queue: Queue = SQLiteQueue(queue_path) if queue_path else MemoryQueue()
        self._fresh_state()
        self._closing = False
        self._in_child = False  # a forked child's copy
        global _fork_hook
        if not _fork_hook:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook = True
        _clients.add(self)
        self._exit_hook = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)
        if (handle_sigterm and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _on_sigterm)
        if len(self._queue):
            with self._cond:
                self._start()

    def _fresh_state(self) -> None:
        """Everything the sending threads share, as for a new Client."""
        self._lock = threading.Lock()  # `with` it: a Condition's own __enter__ is Python, a call more per event
        self._cond = threading.Condition(self._lock)  # guards the queue and every field below
        self._rules_lock = threading.Lock()
        self._rules_fetched_at: float | None = None  # None: never tried
        self._rules_from_collector = False
        self._threads: list[threading.Thread] = []
        self._connections: list[Connection] = []
        self._in_flight = 0  # events taken by a sending thread and not yet settled
        self._waiting_since = time.monotonic()  # when the oldest untaken event was queued
        self._flush_to = 0  # send now everything up to this sequence number
        self._limit = self.batch_size  # smaller after a 413
        self._abandoned = False
        self._queue_closed = False
        self._exiting = False  # at exit with queue_path: stop at the first failure
        self._last_error = ""
        self.stored = 0  # events the collector acknowledged
        self.failing: str | None = None  # the last error, while a batch waits to be sent again
        self._full_logged_at = -math.inf  # a warning at most every FULL_LOG_INTERVAL s while refusing
        self._refused = 0
        # Sequence numbers of events given up (refused, or out of retries)
        # that no flush() has reported yet, ascending; bounded (see _settle).
        self._given_up: list[int] = []

    def _forked(self) -> None:
        """In a forked child: an empty queue of its own (never the parent's
        events, never the parent's file), and threads of its own on first use."""
        old = self._queue
        if isinstance(old, SQLiteQueue):
            old.forget()
        _inherited.append(old)  # its SQLite connection is the parent's: left alone, never closed here
        for connection in self._connections:
            connection.drop()
        self._queue = MemoryQueue()
        self.queue_path = None
        self._fresh_state()
        self._in_child = True

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Events queued and not yet acknowledged (or refused)."""
        with self._cond:
            return len(self._queue)

    # Checking an event.

    def encode(self, kind: str, fields: Mapping[str, object]) -> tuple[str, str]:
        """The event as the line the batch endpoint reads, and its MessageID.
        Raises InvalidEventError naming every field the collector would
        refuse; an event its rules take is never refused here (refused by
        the built-in rules, it is checked again with the collector's own)."""
        return self._rules.quick(kind, fields) or self._encode(kind, fields)

    def _encode(self, kind: str, fields: Mapping[str, object]) -> tuple[str, str]:
        wire, seen, errors = prepare(kind, fields)
        problems = self._rules.check_event(kind, seen)
        if problems and self._fetch_rules():
            return self.encode(kind, fields)
        errors.update(problems)
        if errors:
            raise InvalidEventError(kind, errors)
        if "Timestamp" not in wire:
            wire["Timestamp"] = now_ms()  # when it happened: the collector stores that, not when it arrived
        return line(kind, wire), str(seen["MessageID"])

    def _fetch_rules(self) -> bool:
        """Learn the collector's rules (once, or again after RULES_RETRY s
        when it could not be reached); whether they are new."""
        with self._rules_lock:
            if self._rules_from_collector:
                return False
            now = time.monotonic()
            if self._rules_fetched_at is not None and now < self._rules_fetched_at + RULES_RETRY:
                return False
            self._rules_fetched_at = now
            document, why = fetch_document(self._endpoint, self.timeout, self.anonymous)
            if document is not None:
                try:
                    self._rules = Rules(rules_from_openapi(document), self._endpoint.openapi_path)
                except (KeyError, TypeError, ValueError, IndexError, StopIteration) as e:
                    why = f"no event rules in it ({e!r})"
                else:
                    self._rules_from_collector = True
                    return True
            log.info("track client: the collector's rules are not readable (%s); the built-in ones are used", why)
            return False

    # Queueing.

    def track(self, kind: str, fields: Mapping[str, object]) -> str:
        """Check and queue one event; its MessageID.  Raises InvalidEventError
        (a ValueError) naming each bad field, or QueueFull; then nothing is
        queued."""
        text, message_id = self._rules.quick(kind, fields) or self._encode(kind, fields)  # encode(), a call less
        with self._lock:
            if self._closing:
                raise RuntimeError("this track Client is closed")
            count = len(self._queue)
            if count >= self.max_queue:
                self._full(count)
            self._queue.put(text)
            if not self._threads:
                self._start()
            untaken = count - self._in_flight
            if untaken == 0:
                self._waiting_since = time.monotonic()
                self._cond.notify_all()
            elif (untaken + 1) % self._limit == 0:  # another batch is ready: a waiting thread takes it
                self._cond.notify_all()
        return message_id

    def _full(self, count: int) -> None:
        self._refused += 1
        now = time.monotonic()
        if now >= self._full_logged_at + FULL_LOG_INTERVAL:
            log.warning("track client queue full (%d events): %d new events refused since the last warning",
                        count, self._refused)
            self._full_logged_at, self._refused = now, 0
        raise QueueFull(f"{count} events are waiting to be sent (max_queue); this one was not queued")

    def _start(self) -> None:
        """The sending threads (with the lock held)."""
        util = sys.modules.get("multiprocessing.util")
        if self._in_child and util is not None:
            # multiprocessing's children leave by os._exit, past atexit, and
            # forget finalizers made before their target runs: one made now.
            util.Finalize(self, _close_at_exit, args=(weakref.ref(self),), exitpriority=100)
        with _signals_blocked():  # the new threads inherit the mask
            for number in range(self.connections):
                connection = Connection(self._endpoint, self.timeout)
                thread = threading.Thread(target=self._run, args=(connection,), name=f"track-client-{number}",
                                          daemon=True)
                self._connections.append(connection)
                self._threads.append(thread)
                thread.start()

    def _alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked before this call is acknowledged or
        given up (refused, reported to on_error).  True only if every one of
        them was stored; False if one was given up since the last flush() that
        said so, if `timeout` seconds pass first, or if the client was closed
        with events unsent."""
        self._not_from_on_error("flush")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._abandoned:
                return False
            if not self._threads and len(self._queue) and not self._closing:
                self._start()
            if not self._alive():
                return len(self._queue) == 0 and self._none_given_up(None)
            target = self._queue.newest()
            if target is None:
                return self._none_given_up(None)
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while (oldest := self._queue.oldest()) is not None and oldest <= target:
                if self._abandoned or not self._alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._none_given_up(target)

    def _not_from_on_error(self, what: str) -> None:
        """on_error runs on a sending thread: waiting there for the sending
        threads would never end."""
        if threading.current_thread() in self._threads:
            raise RuntimeError(f"Client.{what}() cannot be called from on_error (it runs on a sending thread)")

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
        Whatever is not stored by then is reported in one WARNING: how many
        events are lost (or stay in queue_path for the next Client).  Run at
        exit too: without queue_path it waits as long as it takes (an
        interrupt abandons them, reported); with queue_path, or after
        SIGTERM, at most `timeout` seconds and only while the collector
        answers."""
        self._not_from_on_error("close")
        atexit.unregister(self._exit_hook)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            for thread in self._threads:
                while thread.is_alive():  # in slices: see JOIN_SLICE
                    left = JOIN_SLICE if deadline is None else min(JOIN_SLICE, deadline - time.monotonic())
                    if left <= 0:
                        break
                    thread.join(left)
        except BaseException:  # KeyboardInterrupt (or SIGTERM): what is unsent is reported, then it goes on
            self._abandon("SIGTERM" if _terminated else "interrupted")
            raise
        if self._alive():
            self._abandon(f"not sent within {timeout} s" + (f": {self._last_error}" if self._last_error else ""))
        else:
            with self._cond:
                left = len(self._queue)
                if left:  # the threads stopped at a failure (at exit with queue_path)
                    self._report(left, self._last_error or "not sent")
                self._queue.close()
                self._queue_closed = True

    def _abandon(self, why: str) -> None:
        """Once only.  Stop sending; the queue (and queue_path's lock) is released now,
        even if a sending thread still waits for an answer: what it gets is
        no longer taken off the queue (in the file, it is sent again by the
        next Client, and the collector stores it once)."""
        with self._cond:
            if self._abandoned and self._queue_closed:
                return
            self._abandoned = self._queue_closed = True
            self._cond.notify_all()
            self._report(len(self._queue), why)
            self._queue.close()

    def _report(self, count: int, why: str) -> None:
        if not count:
            return
        if self.queue_path:
            log.warning("track client: %d events stay in %s for the next Client (%s)", count, self.queue_path, why)
        else:
            log.warning("track client: %d events lost: not acknowledged by the collector before close (%s)",
                        count, why)
