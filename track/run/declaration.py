"""The declaration served now, and the database fitted to it when it first
appears after a start without it.

The file read at start is served until a SIGHUP serves another
(track.run.reload).  When the database was away at start, its first
return applies the served declaration's additive changes before the spool
is replayed; a breaking change found then keeps the events spooled, said
once, until a SIGHUP serves a file that fits, which the next probe fits
the database to.  The SIGHUP's migration and the probe's wait for the same
lock, so either may end first: the probe always fits to the declaration
served when it ends, never back to the one it started with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from track.events.declared import DeclaredKind
from track.fields.compile import compile_kinds
from track.fields.kinds import Kind
from track.fields.tables import KindTables
from track.logs import Logger
from track.storage.dsn import DSN
from track.storage.evolve.apply import BreakingChanges
from track.storage.prepare import Prepared, log_migrations

log = Logger(namespace="track")

Migrate = Callable[[Mapping[str, DeclaredKind]], "Deferred[Prepared]"]


def fit_served(served: Mapping[str, Kind], fitted: Mapping[str, Kind]) -> dict[str, Kind]:
    """The served kinds, each with the string limits the database's columns
    have, where `fitted` (the storage layer's reading of them) knows that
    kind in that table; else as declared."""
    tables = {}
    for name, kind in served.items():
        seen = fitted.get(name)
        if seen is not None and seen.table == kind.table:
            kind = kind.with_string_limits({f.name: (f.max_length, f.bmp_only) for f in seen.fields
                                            if f.type == "string"})
        tables[name] = kind
    return tables


class Declaration:
    """What the kinds served come from, shared by the SIGHUP and the writer's
    first successful probe."""

    def __init__(self, declared: Mapping[str, DeclaredKind], served: Mapping[str, Kind], kinds: KindTables,
                 dsn: DSN, migrate: Migrate) -> None:
        self.declared = declared
        self._at_start = declared, served  # compiled once already
        self.kinds = kinds
        self.dsn = dsn
        self.migrate = migrate  # on a connection of its own, under the migration lock
        self._said = False

    def serve(self, declared: Mapping[str, DeclaredKind], tables: Mapping[str, Kind]) -> None:
        """A SIGHUP's file, compared with the database and fitted: served."""
        self.declared = declared
        self.kinds.serve(tables)

    def database_appeared(self) -> Deferred[Any]:
        """The writer's first probe that finds the database: apply the
        served declaration's additive changes and fit the kinds to it.
        Fails (the writer keeps probing, the spool keeps acknowledging)
        while the declaration does not fit."""
        now = self.declared
        d = self.migrate(now)
        d.addCallback(self._fitted, now)
        return d.addErrback(self._breaking_once)

    def _fitted(self, prepared: Prepared, now: Mapping[str, DeclaredKind]) -> Any:
        log_migrations(self.dsn, prepared)
        if self.declared is not now:
            # A SIGHUP served another file while this ran: fit to that one.
            return self.database_appeared()
        first, served = self._at_start
        # Its subscribers: the OpenAPI document, the saved limits.
        self.kinds.refit(fit_served(served if now is first else compile_kinds(now), prepared.kinds))
        return None

    def _breaking_once(self, failure: Failure) -> Failure:
        if isinstance(failure.value, BreakingChanges) and not self._said:
            self._said = True
            log.error("the database {dsn} is back, but the event kinds cannot be served on it: {e}; events stay "
                      "in the spool until a file that fits is served: put it right and send SIGHUP",
                      dsn=self.dsn.redacted(), e=failure.value)
        return failure
