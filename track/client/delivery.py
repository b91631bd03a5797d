"""The sending threads of a Client: each takes the next batch off the queue
and sends it until every event of it is stored or given up (split on a 413,
the rest again after a 400 that names its bad events), retrying outages with
the same MessageIDs."""

from __future__ import annotations

import bisect
import gzip as gzip_codec
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from track.client.events import now_ms
from track.client.queue import Queue
from track.client.transport import Connection, Endpoint, retry_delay

log = logging.getLogger("track.client")

MAX_BATCH_BYTES = 512 * 1024  # half the server's default --max-batch-body
MAX_GIVEN_UP = 10_000  # given-up events remembered for the next flush()

ErrorHandler = Callable[[dict[str, Any], dict[str, Any]], object]


class Delivery:
    """The Client's sending threads' half; the state is the Client's, made
    in its `_fresh_state` and guarded by `_cond`."""

    _cond: threading.Condition
    _queue: Queue
    _endpoint: Endpoint
    _rules_from_collector: bool
    _abandoned: bool
    _closing: bool
    _exiting: bool
    _in_flight: int
    _limit: int
    _waiting_since: float
    _flush_to: int
    _given_up: list[int]
    _last_error: str
    flush_interval: float
    gzip: bool
    anonymous: bool
    sent_at: bool
    max_retries: int | None
    on_error: ErrorHandler | None
    stored: int
    failing: str | None

    def _fetch_rules(self) -> bool:
        raise NotImplementedError

    def _run(self, connection: Connection) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._deliver(connection, batch)
        except Exception:
            log.exception("track client: a sending thread failed; its events stay queued")
        finally:
            connection.close()
            with self._cond:
                self._cond.notify_all()

    def _next_batch(self) -> list[tuple[int, str]] | None:
        """The next events to send, once there are enough, or they have
        waited flush_interval, or a flush or close wants them; None to stop."""
        if not self._rules_from_collector:
            self._fetch_rules()  # once, before the first send, outside the lock
        with self._cond:
            while True:
                if self._abandoned:
                    return None
                queue = self._queue
                untaken = len(queue) - self._in_flight
                if untaken <= 0:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                wait = self._waiting_since + self.flush_interval - time.monotonic()
                if self._closing or untaken >= self._limit or wait <= 0 or self._flush_to > queue.taken:
                    batch = queue.take(self._limit)
                    self._in_flight += len(batch)
                    if untaken > len(batch):
                        self._waiting_since = time.monotonic()
                    return batch
                self._cond.wait(wait)

    def _settle(self, batch: list[tuple[int, str]], done: bool, refused: dict[int, dict[str, Any]]) -> None:
        """Report the refused events, then take them (and the whole batch, if
        `done`) off the queue: in that order, so a flush() returns after on_error."""
        lines = dict(batch)
        for seq, error in refused.items():
            event = json.loads(lines[seq])
            log.error("track refused event %s (%s): %s", event.get("MessageID"), event.get("type"), error)
            if self.on_error is not None:
                try:
                    self.on_error(event, error)
                except Exception:
                    log.exception("track client: on_error raised")
        settled = set(lines) if done else set(refused)
        with self._cond:
            if self._abandoned:  # the queue is closed
                return
            if done:
                self.stored += len(settled)
                self.failing = None
            self._queue.remove(settled)
            self._in_flight -= len(settled)
            for seq in refused:
                bisect.insort(self._given_up, seq)
            if len(self._given_up) > MAX_GIVEN_UP:  # nobody calls flush(): the newest still fail the next one
                del self._given_up[: len(self._given_up) - MAX_GIVEN_UP]
            self._cond.notify_all()

    def _payload(self, batch: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], bytes]:
        """As much of `batch` as fits MAX_BATCH_BYTES, and its body."""
        payload = "\n".join(text for _, text in batch).encode()
        while len(payload) > MAX_BATCH_BYTES and len(batch) > 1:
            batch = batch[: len(batch) // 2]
            payload = "\n".join(text for _, text in batch).encode()
        if self.gzip:
            payload = gzip_codec.compress(payload, compresslevel=1)
        return batch, payload

    def _deliver(self, connection: Connection, taken: list[tuple[int, str]]) -> None:
        """Send the events this thread took until each is stored or given up
        (or the client is abandoned): split on a 413, the rest again after a 400."""
        parts = deque([taken])
        headers = {"Content-Type": "application/x-ndjson", "User-Agent": "track-client"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        if self.anonymous:
            headers["Track-Anonymous"] = "1"
        while parts:
            whole = parts.popleft()
            batch, payload = self._payload(whole)
            if len(batch) < len(whole):  # too many bytes: the rest next
                parts.appendleft(whole[len(batch):])
            attempt = 0
            while True:
                if self.sent_at:
                    headers["Track-Sent-At"] = str(now_ms())
                status, answered, body, failure = connection.request("POST", self._endpoint.batch_path, payload,
                                                                     headers)
                seqs = [seq for seq, _ in batch]
                if failure is None and 200 <= status < 300:
                    self._settle(batch, True, {})
                    break
                answer = _json_object(body)
                reason = str(answer.get("error") or failure or f"HTTP {status}")
                if status == 400 and (named := _refused_indexes(answer, len(batch))):
                    # Nothing of the batch was stored: the named events go, the
                    # rest are sent again (same MessageIDs).
                    self._settle(batch, False, {seqs[i]: {"status": 400, **e} for i, e in named.items()})
                    rest = [item for i, item in enumerate(batch) if i not in named]
                    if rest:
                        parts.appendleft(rest)
                    break
                if status == 413 and len(batch) > 1:
                    half = max(1, len(batch) // 2)
                    with self._cond:
                        self._limit = min(self._limit, half)
                    parts.extendleft([batch[half:], batch[:half]])
                    break
                if failure is None and status not in (408, 429) and status < 500:
                    self._settle(batch, False, {s: {"status": status, "error": reason} for s in seqs})
                    break
                self._last_error = self.failing = reason
                if self._exiting:  # at exit: what is not sent stays (in the file) and is reported by close()
                    with self._cond:
                        self._abandoned = True
                        self._cond.notify_all()
                    return
                attempt += 1
                if self.max_retries is not None and attempt > self.max_retries:
                    error = {"status": status or None, "error": f"gave up after {attempt} attempts: {reason}"}
                    self._settle(batch, False, dict.fromkeys(seqs, error))
                    break
                delay = retry_delay(answered.get("Retry-After") if answered else None, attempt)
                log.warning("track client: %d events not sent (%s); retrying in %.1f s", len(batch), reason, delay)
                with self._cond:
                    end = time.monotonic() + delay
                    while not self._abandoned and (left := end - time.monotonic()) > 0:
                        self._cond.wait(left)
                    if self._abandoned:
                        return


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

