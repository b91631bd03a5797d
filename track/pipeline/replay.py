"""Replay: spooled events into the database once it is back, oldest first.

Segments are read whole and inserted in runs of one kind, REPLAY_BATCH rows
an INSERT; MessageIDs make a replay repeated after a crash store nothing
twice.  What the database refuses becomes a dead letter and damaged bytes
are kept aside: nothing acknowledged is ever dropped.  An outage stops the
replay until the writer's probe finds the database again; any other failure
(no room for dead letters, an unreadable file) is retried with backoff.  An
error nobody expected is tried again too (BUG_ATTEMPTS times) before the
records it met become dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from track.fields.kinds import Kind
from track.logs import Logger
from track.spool import KindGone, RecordError, Segment, Spool, decode
from track.spool.deadletters import entry as dead_letter
from track.spool.deadletters import gone_entry
from track.types import Backoff, InternalError, Outcome, Refusal, Row, Unavailable

log = Logger(namespace="track.writer")

PROBE_FIRST = 0.5  # seconds: first wait before trying again, doubling
PROBE_MAX = 10.0
REPLAY_BATCH = 1000
# Times a run of records meets an error nobody expected before its records
# become dead letters: a database restarting can give such errors (a Galera
# node's provider in a bad state), and every one of these events was
# acknowledged; a record that fails that way every time must not stop the
# replay for good either.
BUG_ATTEMPTS = 4


class Inserts(Protocol):
    """What the replay needs of the store (track.storage.store.Store)."""

    def insert(self, kind: Kind, rows: Sequence[Row]) -> Deferred[Outcome | None]: ...


class DatabaseState(Protocol):
    """What the replay needs of the writer that owns the database's state."""

    up: bool

    def mark_down(self, reason: str) -> None: ...
    def proven(self) -> None: ...


class TryAgain(Exception):
    """A run met an unexpected error; the replay stops and is tried again
    with backoff (BUG_ATTEMPTS times before its records become dead letters)."""


class Replay:
    """One replay at a time, of one spool into one store."""

    def __init__(self, store: Inserts, spool: Spool | None, clock: IReactorTime,
                 kinds: dict[str, Kind], writer: DatabaseState) -> None:
        self.store = store
        self.spool = spool
        self.clock = clock
        self.kinds = kinds
        self.writer = writer
        self._replaying: Deferred[None] | None = None
        self._call: IDelayedCall | None = None
        self._backoff = Backoff(PROBE_FIRST, PROBE_MAX)
        self._stopping = False
        self._bug_attempts = 0  # consecutive runs that met an unexpected error

    def run(self) -> Deferred[None]:
        """Move spooled events into the database (one replay at a time).

        An outage stops it until the probe finds the database again; any
        other failure (no space left for dead letters, an unreadable file)
        is retried with backoff, one log line a try, until it succeeds."""
        self._call = None
        spool = self.spool
        if spool is None or self._replaying is not None or self._stopping:
            return succeed(None)
        d = self._replaying = Deferred.fromCoroutine(self._replay(spool))

        def finished(result: Failure | None) -> None:
            self._replaying = None
            if not isinstance(result, Failure):
                self._backoff.reset()
            elif isinstance(result.value, Unavailable):
                self.writer.mark_down(result.getErrorMessage())
            elif not self._stopping:
                delay = self._backoff.next()
                log.warn("spool replay stopped ({e}); trying again in {t:g}s",
                         e=result.getErrorMessage(), t=delay)
                self._call = self.clock.callLater(delay, self.run)

        d.addBoth(finished)
        return d

    def _stopped(self) -> bool:
        """Has stop() been called?  (A call, not the attribute, in loops
        that await: stop() may come in at any await.)"""
        return self._stopping

    async def _replay(self, spool: Spool) -> None:
        replayed = dead = 0
        while self.writer.up and not self._stopped() and spool.events:
            paths = await spool.sealed()
            if not paths:
                break
            for path in paths:
                segment = await spool.read(path)
                done = await spool.replayed(path)
                if not done:
                    await self._keep_damaged(spool, path, segment)
                for start in range(done, len(segment.payloads), REPLAY_BATCH):
                    stored, refused = await self._insert_in_order(spool, segment.payloads[start:start + REPLAY_BATCH])
                    replayed += stored
                    dead += refused
                    await spool.mark_replayed(path, start + REPLAY_BATCH)
                    if self._stopped():
                        return  # the next replay resumes after the records marked done
                await spool.remove(path)
        if replayed or dead:
            log.info("replayed {n} spooled events into the database; {d} refused by it, kept as dead letters",
                     n=replayed, d=dead)

    async def _keep_damaged(self, spool: Spool, path: str, segment: Segment) -> None:
        """Bytes that are no whole record go to the dead-letter area, never away."""
        damaged = list(segment.corrupt)
        if segment.tail:
            damaged.append((segment.torn_at or 0, segment.tail))
        if not damaged:
            return
        await spool.keep_corrupt(path, damaged)
        if segment.corrupt:
            log.error("spool segment {path}: {n} damaged record(s) ({b} bytes) skipped and kept in the "
                      "dead-letter area; the records after them are replayed", path=path,
                      n=len(segment.corrupt), b=sum(len(c) for _, c in segment.corrupt))
        if segment.tail:
            log.warn("spool segment {path}: a torn tail of {b} bytes (an append a crash cut short, never "
                     "acknowledged) kept in the dead-letter area", path=path, b=len(segment.tail))

    async def _insert_in_order(self, spool: Spool, payloads: list[bytes]) -> tuple[int, int]:
        """Insert records keeping their order, a run of one kind at a time;
        what the database refuses becomes a dead letter, never a drop.
        Returns (stored, dead-lettered); raises Unavailable on an outage."""
        letters: list[dict[str, Any]] = []
        stored = 0
        run: list[Row] = []
        run_kind: Kind | None = None
        for payload in [*payloads, None]:
            kind: Kind | None = None
            row: Row | None = None
            if payload is not None:
                try:
                    kind, row = decode(payload, self.kinds)
                except KindGone as e:  # the events file changed while it waited: kept, with that reason
                    letters.append(gone_entry(e.kind, e.columns, str(e), payload))
                    continue
                except (RecordError, ValueError, TypeError) as e:
                    letters.append(dead_letter(None, None, f"unreadable spool record: {e}", payload))
                    continue
            if run and (kind is not run_kind or payload is None):
                assert run_kind is not None
                outcome: Outcome | None
                try:
                    outcome = await self.store.insert(run_kind, run)
                except InternalError as e:
                    outcome = [e] * len(run)
                unexpected = next((o for o in outcome or () if isinstance(o, InternalError)), None)
                if unexpected is not None:
                    self._bug_attempts += 1
                    if self._bug_attempts < BUG_ATTEMPTS:
                        raise TryAgain(f"unexpected error storing {run_kind.name} events (attempt "
                                       f"{self._bug_attempts} of {BUG_ATTEMPTS}): {unexpected}")
                self._bug_attempts = 0
                stored += self._sort(run_kind, run, outcome, letters)
                run = []
            run_kind = kind
            if row is not None:
                run.append(row)
        if letters:
            await spool.dead_letter(letters)
            first = letters[0]
            log.error("{n} spooled event(s) could not be stored, kept as dead letters in {path}; "
                      "the first: {kind} {id}: {error}", n=len(letters), path=spool.dead_letters.path,
                      kind=first.get("type", "?"), id=first.get("MessageID", "?"), error=first["error"])
        return stored, len(letters)

    def _sort(self, kind: Kind, rows: list[Row], outcome: Outcome | None,
              letters: list[dict[str, Any]]) -> int:
        """Count the stored rows, turn refused ones into dead letters, and
        stop the replay (Unavailable) if the database went away midway."""
        if outcome is None:
            self.writer.proven()
            return len(rows)
        for row, result in zip(rows, outcome, strict=True):
            if isinstance(result, Unavailable):
                raise Unavailable(f"the database went away during replay: {result}")
            if isinstance(result, Refusal):
                error = f"{result.column}: {result.reason}: {result.detail}" if result.column else result.detail
                letters.append(dead_letter(kind, row, error))
            elif isinstance(result, InternalError):
                letters.append(dead_letter(kind, row, f"internal error: {result}"))
        stored = sum(1 for o in outcome if o is None)
        if stored:
            self.writer.proven()
        return stored

    def stop(self) -> Deferred[None]:
        """No more retries; the step in progress finishes."""
        self._stopping = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return self._replaying if self._replaying is not None else succeed(None)
