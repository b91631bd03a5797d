"""Suppressed ProfileIDs at the edge: their events are answered 201 (as
Segment does, so a client does not retry) and stored nowhere: not in the
database, the spool, the live page or a log line.  The set is read from
the suppression table at start and refreshed every REFRESH_SECONDS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from track.fields.kinds import Kind
from track.logs import Logger
from track.storage.suppression import REFRESH_SECONDS, read_ids

log = Logger(namespace="track.suppress")


class Suppression:
    """The suppressed IDs now (replaced whole at each refresh)."""

    def __init__(self, ids: frozenset[int] = frozenset()) -> None:
        self.ids = ids

    def holds(self, kind: Kind, row: Sequence[Any]) -> bool:
        """Whether this event's ProfileID is suppressed."""
        if not self.ids or "ProfileID" not in kind.columns:
            return False
        return row[kind.columns.index("ProfileID")] in self.ids


def answer_suppressed(request: Any, counter: Any) -> bytes:
    """A suppressed ID's event: 201, counted, never logged with the ID."""
    counter.inc()
    request.track_suppressed = True  # the access log leaves out its query string
    request.setResponseCode(201)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return b""


def initial_suppression(dialect: Any) -> frozenset[int]:
    """The suppression list at start (empty, with a warning, if unreadable)."""
    try:
        conn = dialect.connect()
        try:
            return read_ids(conn, dialect)
        finally:
            conn.close()
    except Exception as e:  # the database went away since prepare_database: the refresh retries
        log.warn("could not read the suppression list at start ({e}); retrying every 10 s", e=type(e).__name__)
        return frozenset()


class SuppressionRefresh(Service):
    """Reads the table again every `interval` seconds on the store's pool;
    while the database is down the last set stays."""

    def __init__(self, suppression: Suppression, store: Any, clock: Any,
                 interval: float = REFRESH_SECONDS) -> None:
        self.suppression = suppression
        self.store = store
        self.interval = interval
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        if self._loop.running:
            self._loop.stop()
        super().stopService()  # type: ignore[no-untyped-call]

    def refresh(self) -> Any:
        d = self.store.pool.runWithConnection(read_ids, self.store.dialect)

        def got(ids: frozenset[int]) -> None:
            if ids != self.suppression.ids:
                log.info("suppression list refreshed: {n} profile IDs", n=len(ids))
            self.suppression.ids = ids

        def failed(failure: Any) -> None:
            log.debug("could not refresh the suppression list: {e}", e=failure.getErrorMessage())

        return d.addCallbacks(got, failed)
