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

from track.events import EventType
from track.logs import Logger
from track.spool import Spool, SpoolFull, decode, encode
from track.store import Outcome, Row, Store, Unavailable

log = Logger(namespace="track.writer")

PROBE_FIRST = 0.5  # seconds
PROBE_MAX = 10.0
REPLAY_BATCH = 500
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
        self._on_up = on_up
        self._probe_call: IDelayedCall | None = None
        self._delay = PROBE_FIRST
        self._replaying: Deferred[None] | None = None
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
        return self.store.insert_atomic(groups).addErrback(self._failed, groups)

    def _spool_groups(self, groups: Sequence[tuple[EventType, Sequence[Row]]]) -> Deferred[Any]:
        if self.spool is None:
            return fail(Unavailable("the database is down and there is no spool"))
        d = self.spool.append([encode(event, row) for event, rows in groups for row in rows])

        def full(failure: Failure) -> Failure:
            failure.trap(SpoolFull)
            return Failure(Unavailable("the database is down and the spool is full"))

        d.addCallbacks(lambda _: None, full)
        return d

    def _stored(self, outcome: Outcome | None, event: EventType, rows: Sequence[Row]) -> Any:
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
        """The database could not take the write: spool it instead."""
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
        log.warn("database unavailable ({reason}); acknowledging from the spool until it is back",
                 reason=reason)
        self._delay = PROBE_FIRST
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._probe_call is None and not self._stopping:
            self._probe_call = self.clock.callLater(self._delay, self._probe)

    def _probe(self) -> None:
        self._probe_call = None
        d = self.store.ping()
        if self._on_up is not None:
            d.addCallback(lambda _: self._on_up())  # type: ignore[misc]
        d.addCallbacks(self._back, self._still_down)

    def _back(self, _: object) -> None:
        self._on_up = None
        self.up = True
        log.info("database is back; replaying {n} spooled events",
                 n=self.spool.events if self.spool else 0)
        self.replay()

    def _still_down(self, failure: Failure) -> None:
        log.debug("database still unavailable: {e}", e=failure.getErrorMessage())
        self._delay = min(self._delay * 2, PROBE_MAX)
        self._schedule_probe()

    # -- replay -----------------------------------------------------------------------

    def replay(self) -> Deferred[None]:
        """Move spooled events into the database (one replay at a time)."""
        if self.spool is None or self._replaying is not None:
            return succeed(None)
        d = self._replaying = self._replay()

        def finished(result: Any) -> None:
            self._replaying = None
            if isinstance(result, Failure):
                if result.check(Unavailable):
                    self.mark_down(result.getErrorMessage())
                else:
                    log.failure("spool replay failed", result)

        d.addBoth(finished)
        return d

    @inlineCallbacks
    def _replay(self) -> Any:
        assert self.spool is not None
        replayed = 0
        while self.up and not self._stopping and self.spool.events:
            paths = yield self.spool.sealed()
            if not paths:
                break
            for path in paths:
                offset = 0
                while True:
                    chunk = yield self.spool.read(path, offset, REPLAY_BATCH)
                    yield self._insert_in_order(chunk.payloads)
                    replayed += len(chunk.payloads)
                    offset = chunk.offset
                    if chunk.done or self._stopping:
                        break
                if self._stopping:
                    return
                yield self.spool.remove(path)
        if replayed:
            log.info("replayed {n} spooled events into the database", n=replayed)

    @inlineCallbacks
    def _insert_in_order(self, payloads: list[bytes]) -> Any:
        """Insert records keeping their order, a run of one kind at a time."""
        run: list[Row] = []
        run_event: EventType | None = None
        for payload in [*payloads, None]:
            event, row = decode(payload, self.event_types) if payload is not None else (None, None)
            if run and event is not run_event:
                outcome = yield self.store.insert(run_event, run)  # type: ignore[arg-type]
                self._report_refused(run_event, run, outcome)  # type: ignore[arg-type]
                if outcome is not None and any(isinstance(o, Unavailable) for o in outcome):
                    raise Unavailable("the database went away during replay")
                run = []
            run_event = event
            if row is not None:
                run.append(row)

    @staticmethod
    def _report_refused(event: EventType, rows: list[Row], outcome: Outcome | None) -> None:
        for row, error in zip(rows, outcome or ()):
            if error is not None and not isinstance(error, Unavailable):
                log.error("spooled {kind} event {id} refused by the database ({column}: {reason}); dropped",
                          kind=event.name, id=row[event.message_id_index],
                          column=error.column, reason=error.reason)

    # -- shutdown -------------------------------------------------------------------

    def stop(self) -> Deferred[None]:
        """Stop probing and let the replay step in progress finish."""
        self._stopping = True
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        self._probe_call = None
        return self._replaying if self._replaying is not None else succeed(None)

    def health(self) -> dict[str, Any]:
        spool = {"events": self.spool.events, "bytes": self.spool.bytes} if self.spool else {"events": 0, "bytes": 0}
        return {"status": "ok", "database": "up" if self.up else "down", "spool": spool}

    def ready(self) -> bool:
        """Can an event be accepted now: database up, or room in the spool."""
        if self.up:
            return True
        if self.spool is None:
            return False
        headroom = min(SPOOL_HEADROOM, self.spool.max_bytes // 10)
        return self.spool.max_bytes - self.spool.bytes >= headroom
