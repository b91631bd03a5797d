"""SIGHUP: read the events file again, and serve what it declares.

The file is read and checked, compared with the database and its additive
changes applied, on a connection of its own under the migration lock (the
pool's connections are not touched); then the new field tables replace the
running ones, between two requests.  A file that does not parse, a breaking
change, or a database that is away is refused with one log line, and the
running kinds stay.

While the writer counts the database as down, the comparison is tried all
the same: the database may be back with kinds that do not fit it (a
breaking change found when it appeared, the events waiting in the spool),
and a SIGHUP with a file put right is what lets the writer go on.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from track.events.declared import DeclaredKind
from track.events.files import served_kinds
from track.events.subset import EventsFileError
from track.fields.event import Kind
from track.logs import Logger
from track.storage.dialect import Dialect
from track.storage.dsn import DSN
from track.storage.evolve.apply import BreakingChanges
from track.storage.prepare import Prepared, log_migrations, migrate_on_own_connection
from track.types import Verdict

log = Logger(namespace="track")


class Reload(Service):
    """Reads `events` again on SIGHUP (the original four alone when None:
    a SIGHUP then checks the database and changes nothing else)."""

    def __init__(self, events: str | None, dsn: DSN, dialect: Dialect, reactor: Any,
                 serve: Callable[[Mapping[str, DeclaredKind], Mapping[str, Kind]], None]) -> None:
        self.events = events
        self.dsn = dsn
        self.dialect = dialect
        self.reactor = reactor
        self.serve = serve
        self._reloading: Deferred[Prepared] | None = None
        self._again = False
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._previous = signal.signal(signal.SIGHUP, self._signalled)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        signal.signal(signal.SIGHUP, self._previous if self._previous is not None else signal.SIG_DFL)

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> Deferred[bool]:
        """Read the file again and serve it; fires True when its kinds are
        served, False when refused (the running kinds stay).  A SIGHUP
        during a reload is taken once that one ends."""
        if self._reloading is not None:
            log.info("SIGHUP: a reload is in progress; reading the file again after it")
            self._again = True
            return succeed(False)
        source = self.events or "the original kinds"
        log.info("SIGHUP: reading {source} again", source=source)
        try:
            declared = served_kinds(self.events)
        except EventsFileError as e:
            log.error("SIGHUP: refused, the running kinds stay: {e}", e=e)
            return succeed(False)
        d: Deferred[Prepared] = deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                  migrate_on_own_connection, self.dialect, declared)
        self._reloading = d
        served: Deferred[bool] = d.addCallback(self._applied, declared)
        return served.addErrback(self._refused, source).addBoth(self._done)

    def _applied(self, prepared: Prepared, declared: Mapping[str, DeclaredKind]) -> bool:
        log_migrations(self.dsn, prepared)
        self.serve(declared, prepared.kinds)
        log.info("SIGHUP: serving kinds {kinds}", kinds=", ".join(prepared.kinds))
        return True

    def _refused(self, failure: Failure, source: str) -> bool:
        if isinstance(failure.value, BreakingChanges):
            log.error("SIGHUP: refused, the running kinds stay: {e}", e=failure.value)
            return False
        message = failure.getErrorMessage()
        if self.dsn.password:
            message = message.replace(self.dsn.password, "***")
        # Told by the failure itself: after a breaking change found on the
        # database's return, the writer counts it as down while it is there.
        if isinstance(failure.value, Exception) and self.dialect.classify(failure.value) is Verdict.OUTAGE:
            log.error("SIGHUP: refused, the running kinds stay: the database is unavailable, so {source} cannot "
                      "be compared with it; send SIGHUP again once it is back ({dsn}: {e})",
                      source=source, dsn=self.dsn.redacted(), e=message)
        else:
            log.error("SIGHUP: refused, the running kinds stay: {dsn}: {e}", dsn=self.dsn.redacted(), e=message)
        return False

    def _done(self, result: bool) -> bool:
        self._reloading = None
        if self._again:
            self._again = False
            self.reactor.callLater(0, self.reload)
        return result
