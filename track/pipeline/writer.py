"""Where each batch goes: the database when it is up, the spool when not.

The batcher hands every batch here.  While the database takes writes they go
straight to it.  When a write fails for want of the database, that batch
(already validated, each event with its MessageID) is fsync'd to the spool
and acknowledged, and the database is marked down: so is a write it has not
answered within `outage_wait` seconds (a server stopped, or behind a hung
proxy, accepts and never answers).  Later batches go to the
spool without waiting on it, and a probe with capped exponential backoff
looks for it, logging once when it goes and once when it is back.  Then the
spool is replayed into it, oldest first; MessageIDs make every replay, even
one repeated after a crash, store each event exactly once (replay.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from track.fields.kinds import Kind
from track.logs import Logger
from track.pipeline.replay import PROBE_FIRST, PROBE_MAX, Inserts, Replay
from track.spool import Spool, SpoolBroken, SpoolFull, encode
from track.types import Backoff, BatchRefusal, Outcome, Row, Unavailable

log = Logger(namespace="track.writer")

# Seconds a write may wait for the database before its batch is spooled
# (--outage-wait): a stopped server otherwise holds requests for the read timeout.
DEFAULT_OUTAGE_WAIT = 2.0
# Not ready once the spool cannot take a burst of this many more bytes.
SPOOL_HEADROOM = 64 * 1024
# The result a write's Deferred carries when stored; a spooled write fires
# None (everything acknowledged) in its place.
_R = TypeVar("_R")


def _nothing(_: object) -> None:
    return None


class Storage(Inserts, Protocol):
    """What the writer needs of the store (track.storage.store.Store);
    hosts_health is for track.admin.health."""

    def insert_atomic(
        self, groups: Sequence[tuple[Kind, Sequence[Row]]]
    ) -> Deferred[list[BatchRefusal] | None]: ...
    def ping(self) -> Deferred[None]: ...
    def hosts_health(self) -> dict[str, Any] | None: ...


class Writer:
    def __init__(
        self,
        store: Storage,
        spool: Spool | None,
        clock: IReactorTime,
        kinds: dict[str, Kind],
        database_up: bool = True,
        on_up: Callable[[], Deferred[Any]] | None = None,
        outage_wait: float = 0.0,
    ) -> None:
        self.store = store
        self.outage_wait = outage_wait  # seconds a write may wait for an answer (0: the read timeout)
        self.spool = spool
        self.clock = clock
        self.up = database_up
        self.down_reason = ""
        self._on_up = on_up
        self._probe_call: IDelayedCall | None = None
        self._backoff = Backoff(PROBE_FIRST, PROBE_MAX)
        # A write has succeeded since the database was last declared back:
        # only then does the next outage start probing from PROBE_FIRST.
        self._proven = database_up
        self._stopping = False
        self._replay = Replay(store, spool, clock, kinds, self)

    def start(self) -> None:
        if self.up:
            self.replay()
        else:
            self._schedule_probe()

    # -- writing --------------------------------------------------------------

    def insert(self, kind: Kind, rows: Sequence[Row]) -> Deferred[Outcome | None]:
        if not self.up:
            return self._spool(kind, rows)
        d = self._bounded(self.store.insert(kind, rows))
        return d.addCallbacks(
            self._stored, self._failed, callbackArgs=(kind, rows), errbackArgs=([(kind, rows)],)
        )

    def insert_atomic(
        self, groups: Sequence[tuple[Kind, Sequence[Row]]]
    ) -> Deferred[list[BatchRefusal] | None]:
        """All of a batch request or none: one transaction, or one spool append."""
        if not self.up:
            return self._spool_groups(groups)
        d = self._bounded(self.store.insert_atomic(groups))
        return d.addCallbacks(self._proof, self._failed, errbackArgs=(groups,))

    def _bounded(self, write: Deferred[_R]) -> Deferred[_R]:
        """`write`, or Unavailable (the outage path: the spool) once it has
        waited `outage_wait` seconds: a database that accepts and never
        answers holds requests this long, not for the read timeout.  A write
        that answers later is dropped here; had it committed, its rows are
        in the spool too, and the replay stores nothing twice (MessageIDs)."""
        if self.spool is None or not self.outage_wait:
            return write  # without a spool, waiting longer is the better answer than a 503
        bounded: Deferred[_R] = Deferred()
        wait = self.outage_wait

        def no_answer() -> None:
            bounded.errback(Unavailable(f"no answer from the database within {wait:g}s"))

        timer = self.clock.callLater(wait, no_answer)

        def answered(result: _R | Failure) -> None:
            if timer.active():
                timer.cancel()
                if isinstance(result, Failure):
                    bounded.errback(result)
                else:
                    bounded.callback(result)
            elif isinstance(result, Failure):
                log.debug("a write answered after {wait}s: {e}", wait=wait, e=result.getErrorMessage())

        write.addBoth(answered)
        return bounded

    def _proof(self, result: list[BatchRefusal] | None) -> list[BatchRefusal] | None:
        self.proven()
        return result

    def _spool_groups(self, groups: Sequence[tuple[Kind, Sequence[Row]]]) -> Deferred[_R | None]:
        """Spool the rows, or fail with Unavailable (a 503) when the spool is
        off, full, or its disk refuses the write: never a 201 not on disk."""
        if self.spool is None:
            return fail(Unavailable("the database is down and there is no spool"))
        d = self.spool.append([encode(event, row) for event, rows in groups for row in rows])

        def refused(failure: Failure) -> Failure:
            if not isinstance(failure.value, (SpoolFull, SpoolBroken)):
                return failure
            why = "full" if isinstance(failure.value, SpoolFull) else f"not writable ({failure.getErrorMessage()})"
            raise Unavailable(f"the database is down and the spool is {why}")

        return d.addCallbacks(_nothing, refused)

    def _stored(
        self, outcome: Outcome | None, kind: Kind, rows: Sequence[Row]
    ) -> Outcome | Deferred[Outcome | None] | None:
        if outcome is None or any(o is None for o in outcome):
            self.proven()
        if outcome is None or not any(isinstance(o, Unavailable) for o in outcome):
            return outcome
        # Part of a batch was cut off by an outage: spool that part.
        lost = [i for i, o in enumerate(outcome) if isinstance(o, Unavailable)]
        self.mark_down(str(outcome[lost[0]]))
        d = self._spool(kind, [rows[i] for i in lost])

        def merge(_: object) -> Outcome | None:
            return [None if isinstance(o, Unavailable) else o for o in outcome]

        return d.addCallback(merge)

    def _failed(
        self, failure: Failure, groups: Sequence[tuple[Kind, Sequence[Row]]]
    ) -> Failure | Deferred[_R | None]:
        """The database could not take the write: spool it instead.  Any
        other failure (InternalError) goes back to its requests as it is."""
        if not isinstance(failure.value, Unavailable):
            return failure
        self.mark_down(failure.getErrorMessage())
        return self._spool_groups(groups)

    def _spool(self, kind: Kind, rows: Sequence[Row]) -> Deferred[Outcome | None]:
        return self._spool_groups([(kind, rows)])

    # -- the database going and coming back ---------------------------------------

    def mark_down(self, reason: str) -> None:
        if not self.up:
            return
        self.up = False
        self.down_reason = reason
        log.warn("database unavailable ({reason}); acknowledging from the spool until it is back",
                 reason=reason)
        if self._proven:
            self._backoff.reset()
        # else: it was declared back but no write got through since (a
        # read-only server, a node leaving its cluster): keep backing off.
        self._proven = False
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._probe_call is None and not self._stopping:
            self._probe_call = self.clock.callLater(self._backoff.next(), self._probe)

    def _probe(self) -> None:
        """Does the database take writes again (not merely answer)?"""
        self._probe_call = None
        d: Deferred[Any] = self.store.ping()
        on_up = self._on_up
        if on_up is not None:
            d.addCallback(lambda _: on_up())
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

    def replay(self) -> Deferred[None]:
        """Move spooled events into the database (see Replay)."""
        return self._replay.run()

    def proven(self) -> None:
        """A write got through: the next outage probes from the start."""
        self._proven = True

    # -- shutdown and readiness (the health JSON: track.admin.health) ---------------

    def stop(self) -> Deferred[None]:
        """Stop probing and let the replay step in progress finish."""
        self._stopping = True
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        self._probe_call = None
        return self._replay.stop()

    def ready(self) -> bool:
        """Can an event be accepted now: database up, or a writable spool
        with room left."""
        if self.up:
            return True
        if self.spool is None or not self.spool.writable:
            return False
        headroom = min(SPOOL_HEADROOM, self.spool.max_bytes // 10)
        return self.spool.max_bytes - self.spool.bytes >= headroom
