"""Where each batch goes: the database when it is up, the spool when not.

The batcher hands every batch here.  While the database takes writes they go
straight to it.  When a write fails for want of the database, that batch
(already validated, each event with its MessageID) is fsync'd to the spool
and acknowledged, and the database is marked down: later batches go to the
spool without waiting on it, and a probe with capped exponential backoff
looks for it, logging once when it goes and once when it is back.  Then the
spool is replayed into it, oldest first; MessageIDs make every replay, even
one repeated after a crash, store each event exactly once.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from track.dialects import RowError
from track.events import EventType
from track.logs import Logger
from track.spool import RecordError, Segment, Spool, SpoolBroken, SpoolFull, decode, encode
from track.spool.deadletters import entry as dead_letter
from track.store import InternalError, Outcome, Row, Store, Unavailable

log = Logger(namespace="track.writer")

PROBE_FIRST = 0.5  # seconds
PROBE_MAX = 10.0
REPLAY_BATCH = 1000
# Not ready once the spool cannot take a burst of this many more bytes.
SPOOL_HEADROOM = 64 * 1024


class Writer:
    def __init__(
        self,
        store: Store,
        spool: Spool | None,
        clock: IReactorTime,
        event_types: dict[str, EventType],
        database_up: bool = True,
        on_up: Callable[[], Deferred[Any]] | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.clock = clock
        self.event_types = event_types
        self.up = database_up
        self.down_reason = ""
        self._on_up = on_up
        self._probe_call: IDelayedCall | None = None
        self._delay = PROBE_FIRST
        # A write has succeeded since the database was last declared back:
        # only then does the next outage start probing from PROBE_FIRST.
        self._proven = database_up
        self._replaying: Deferred[None] | None = None
        self._replay_call: IDelayedCall | None = None
        self._replay_delay = PROBE_FIRST
        self._stopping = False

    def start(self) -> None:
        if self.up:
            self.replay()
        else:
            self._schedule_probe()

    # -- writing --------------------------------------------------------------

    def insert(self, event: EventType, rows: Sequence[Row]) -> Deferred[Outcome | None]:
        if not self.up:
            return self._spool(event, rows)
        d = self.store.insert(event, rows)
        d.addCallbacks(self._stored, self._failed, (event, rows), None, ([(event, rows)],))
        return d

    def insert_atomic(self, groups: Sequence[tuple[EventType, Sequence[Row]]]) -> Deferred[Any]:
        """All of a batch request or none: one transaction, or one spool append."""
        if not self.up:
            return self._spool_groups(groups)
        d = self.store.insert_atomic(groups)
        d.addCallbacks(self._proof, self._failed, None, None, (groups,))
        return d

    def _proof(self, result: Any) -> Any:
        self._proven = True
        return result

    def _spool_groups(self, groups: Sequence[tuple[EventType, Sequence[Row]]]) -> Deferred[Any]:
        """Spool the rows, or fail with Unavailable (a 503) when the spool is
        off, full, or its disk refuses the write: never a 201 not on disk."""
        if self.spool is None:
            return fail(Unavailable("the database is down and there is no spool"))
        d = self.spool.append([encode(event, row) for event, rows in groups for row in rows])

        def refused(failure: Failure) -> Failure:
            failure.trap(SpoolFull, SpoolBroken)
            why = "full" if failure.check(SpoolFull) else f"not writable ({failure.getErrorMessage()})"
            return Failure(Unavailable(f"the database is down and the spool is {why}"))

        d.addCallbacks(lambda _: None, refused)
        return d

    def _stored(self, outcome: Outcome | None, event: EventType, rows: Sequence[Row]) -> Any:
        if outcome is None or any(o is None for o in outcome):
            self._proven = True
        if outcome is None or not any(isinstance(o, Unavailable) for o in outcome):
            return outcome
        # Part of a batch was cut off by an outage: spool that part.
        lost = [i for i, o in enumerate(outcome) if isinstance(o, Unavailable)]
        self.mark_down(str(outcome[lost[0]]))
        d = self._spool(event, [rows[i] for i in lost])

        def merge(_: None) -> Outcome:
            return [None if isinstance(o, Unavailable) else o for o in outcome]

        return d.addCallback(merge)

    def _failed(self, failure: Failure, groups: Sequence[tuple[EventType, Sequence[Row]]]) -> Any:
        """The database could not take the write: spool it instead.  Any
        other failure (InternalError) goes back to its requests as it is."""
        failure.trap(Unavailable)
        self.mark_down(failure.getErrorMessage())
        return self._spool_groups(groups)

    def _spool(self, event: EventType, rows: Sequence[Row]) -> Deferred[Outcome | None]:
        return self._spool_groups([(event, rows)])

    # -- the database going and coming back ---------------------------------------

    def mark_down(self, reason: str) -> None:
        if not self.up:
            return
        self.up = False
        self.down_reason = reason
        log.warn("database unavailable ({reason}); acknowledging from the spool until it is back",
                 reason=reason)
        if self._proven:
            self._delay = PROBE_FIRST
        # else: it was declared back but no write got through since (a
        # read-only server, a node leaving its cluster): keep backing off.
        self._proven = False
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._probe_call is None and not self._stopping:
            self._probe_call = self.clock.callLater(self._delay, self._probe)
            self._delay = min(self._delay * 2, PROBE_MAX)

    def _probe(self) -> None:
        """Does the database take writes again (not merely answer)?"""
        self._probe_call = None
        d = self.store.ping()
        if self._on_up is not None:
            d.addCallback(lambda _: self._on_up())  # type: ignore[misc]
        d.addCallbacks(self._back, self._still_down)

    def _back(self, _: object) -> None:
        self._on_up = None
        self.up = True
        self.down_reason = ""
        log.info("database is back; replaying {n} spooled events",
                 n=self.spool.events if self.spool else 0)
        self.replay()

    def _still_down(self, failure: Failure) -> None:
        log.debug("database still unavailable: {e}", e=failure.getErrorMessage())
        self.down_reason = failure.getErrorMessage()
        self._schedule_probe()

    # -- replay -----------------------------------------------------------------------

    def replay(self) -> Deferred[None]:
        """Move spooled events into the database (one replay at a time).

        An outage stops it until the probe finds the database again; any
        other failure (no space left for dead letters, an unreadable file)
        is retried with backoff, one log line a try, until it succeeds."""
        self._replay_call = None
        if self.spool is None or self._replaying is not None or self._stopping:
            return succeed(None)
        d = self._replaying = self._replay()

        def finished(result: Any) -> None:
            self._replaying = None
            if not isinstance(result, Failure):
                self._replay_delay = PROBE_FIRST
            elif result.check(Unavailable):
                self.mark_down(result.getErrorMessage())
            elif not self._stopping:
                log.warn("spool replay stopped ({e}); trying again in {t:g}s",
                         e=result.getErrorMessage(), t=self._replay_delay)
                self._replay_call = self.clock.callLater(self._replay_delay, self.replay)
                self._replay_delay = min(self._replay_delay * 2, PROBE_MAX)

        d.addBoth(finished)
        return d

    @inlineCallbacks
    def _replay(self) -> Any:
        assert self.spool is not None
        replayed = dead = 0
        while self.up and not self._stopping and self.spool.events:
            paths = yield self.spool.sealed()
            if not paths:
                break
            for path in paths:
                segment = yield self.spool.read(path)
                yield self._keep_damaged(path, segment)
                for start in range(0, len(segment.payloads), REPLAY_BATCH):
                    stored, refused = yield self._insert_in_order(segment.payloads[start:start + REPLAY_BATCH])
                    replayed += stored
                    dead += refused
                    if self._stopping:
                        return  # the segment is replayed again, from its start, next time
                yield self.spool.remove(path)
        if replayed or dead:
            log.info("replayed {n} spooled events into the database; {d} refused by it, kept as dead letters",
                     n=replayed, d=dead)

    @inlineCallbacks
    def _keep_damaged(self, path: str, segment: Segment) -> Any:
        """Bytes that are no whole record go to the dead-letter area, never away."""
        damaged = list(segment.corrupt)
        if segment.tail:
            damaged.append((segment.torn_at or 0, segment.tail))
        if not damaged:
            return
        yield self.spool.keep_corrupt(path, damaged)  # type: ignore[union-attr]
        if segment.corrupt:
            log.error("spool segment {path}: {n} damaged record(s) ({b} bytes) skipped and kept in the "
                      "dead-letter area; the records after them are replayed", path=path,
                      n=len(segment.corrupt), b=sum(len(c) for _, c in segment.corrupt))
        if segment.tail:
            log.warn("spool segment {path}: a torn tail of {b} bytes (an append a crash cut short, never "
                     "acknowledged) kept in the dead-letter area", path=path, b=len(segment.tail))

    @inlineCallbacks
    def _insert_in_order(self, payloads: list[bytes]) -> Any:
        """Insert records keeping their order, a run of one kind at a time;
        what the database refuses becomes a dead letter, never a drop.
        Returns (stored, dead-lettered); raises Unavailable on an outage."""
        letters: list[dict[str, Any]] = []
        stored = 0
        run: list[Row] = []
        run_event: EventType | None = None
        for payload in [*payloads, None]:
            event: EventType | None = None
            row: Row | None = None
            if payload is not None:
                try:
                    event, row = decode(payload, self.event_types)
                except (RecordError, ValueError, TypeError) as e:
                    letters.append(dead_letter(None, None, f"unreadable spool record: {e}", payload))
                    continue
            if run and (event is not run_event or payload is None):
                assert run_event is not None
                try:
                    outcome = yield self.store.insert(run_event, run)
                except InternalError as e:
                    outcome = [e] * len(run)
                stored += self._sort(run_event, run, outcome, letters)
                run = []
            run_event = event
            if row is not None:
                run.append(row)
        if letters:
            yield self.spool.dead_letter(letters)  # type: ignore[union-attr]
            first = letters[0]
            log.error("{n} spooled event(s) could not be stored, kept as dead letters in {path}; "
                      "the first: {kind} {id}: {error}", n=len(letters), path=self.spool.dead_letters.path,  # type: ignore[union-attr]
                      kind=first.get("type", "?"), id=first.get("MessageID", "?"), error=first["error"])
        return stored, len(letters)

    def _sort(self, event: EventType, rows: list[Row], outcome: Outcome | None,
              letters: list[dict[str, Any]]) -> int:
        """Count the stored rows, turn refused ones into dead letters, and
        stop the replay (Unavailable) if the database went away midway."""
        if outcome is None:
            self._proven = True
            return len(rows)
        for row, result in zip(rows, outcome):
            if isinstance(result, Unavailable):
                raise Unavailable(f"the database went away during replay: {result}")
            if isinstance(result, RowError):
                error = f"{result.column}: {result.reason}: {result.detail}" if result.column else result.detail
                letters.append(dead_letter(event, row, error))
            elif isinstance(result, InternalError):
                letters.append(dead_letter(event, row, f"internal error: {result}"))
        stored = sum(1 for o in outcome if o is None)
        self._proven = self._proven or stored > 0
        return stored

    # -- shutdown -------------------------------------------------------------------

    def stop(self) -> Deferred[None]:
        """Stop probing and let the replay step in progress finish."""
        self._stopping = True
        for call in (self._probe_call, self._replay_call):
            if call is not None and call.active():
                call.cancel()
        self._probe_call = self._replay_call = None
        return self._replaying if self._replaying is not None else succeed(None)

    def health(self) -> dict[str, Any]:
        """What /healthz shows: the database, the spool, the dead letters."""
        state: dict[str, Any] = {"status": "ok", "database": "up" if self.up else "down"}
        if not self.up and self.down_reason:
            state["database_error"] = self.down_reason
        spool = self.spool
        if spool is None:
            state["spool"] = {"events": 0, "bytes": 0, "writable": False, "error": "turned off"}
            state["dead_letter"] = {"events": 0, "corrupt_bytes": 0}
            return state
        state["spool"] = {"events": spool.events, "bytes": spool.bytes, "writable": spool.writable}
        if spool.error:
            state["spool"]["error"] = spool.error
        state["dead_letter"] = {"events": spool.dead_letters.events(),
                                "corrupt_bytes": spool.dead_letters.corrupt_bytes()}
        return state

    def ready(self) -> bool:
        """Can an event be accepted now: database up, or a writable spool
        with room left."""
        if self.up:
            return True
        if self.spool is None or not self.spool.writable:
            return False
        headroom = min(SPOOL_HEADROOM, self.spool.max_bytes // 10)
        return self.spool.max_bytes - self.spool.bytes >= headroom
