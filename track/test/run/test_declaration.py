"""The declaration served, and the database fitted to it on its first
return, in memory: a SIGHUP served while that first fitting waits for the
migration lock wins; a breaking change is said once."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from track.events.declared import DeclaredKind
from track.events.files import served_kinds
from track.fields.compile import compile_kinds
from track.fields.tables import KindTables
from track.run.declaration import Declaration
from track.storage.dsn import parse_dsn
from track.storage.evolve.apply import BreakingChanges
from track.storage.evolve.classify import Breaking
from track.storage.prepare import Prepared
from track.test.events.example import write_events_file
from track.test.support import logged

DSN = parse_dsn("mysql://track:secret@db.example:3306/track")


class DeclarationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.at_start = served_kinds(write_events_file(self.mktemp()))  # the original four and level_up
        self.later = served_kinds(None)  # the original four: level_up removed
        self.kinds = KindTables(compile_kinds(self.at_start))
        self.migrations: list[tuple[Mapping[str, DeclaredKind], Deferred[Prepared]]] = []
        self.declaration = Declaration(self.at_start, compile_kinds(self.at_start), self.kinds, DSN, self.migrate)
        self.lines: list[str] = logged(self)

    def migrate(self, declared: Mapping[str, DeclaredKind]) -> Deferred[Prepared]:
        """Waits (as for the migration lock) until the test says how it ended."""
        d: Deferred[Prepared] = Deferred()
        self.migrations.append((declared, d))
        return d

    @staticmethod
    def prepared(declared: Mapping[str, DeclaredKind]) -> Prepared:
        return Prepared(done=[], gone=[], kinds=compile_kinds(declared))

    def test_a_sighup_served_while_the_first_fitting_waits_is_what_is_fitted(self) -> None:
        probe = self.declaration.database_appeared()
        self.declaration.serve(self.later, compile_kinds(self.later))  # the SIGHUP got the lock first
        self.assertEqual(list(self.kinds), ["session", "user", "item", "purchase"])
        (started_with, first), = self.migrations
        self.assertIs(started_with, self.at_start)
        first.callback(self.prepared(self.at_start))  # the probe's migration, with the file of the start
        (_, _), (again, second) = self.migrations  # ... is run again, with the file served now
        self.assertIs(again, self.later)
        second.callback(self.prepared(self.later))
        self.assertIsNone(self.successResultOf(probe))
        self.assertEqual(list(self.kinds), ["session", "user", "item", "purchase"])  # level_up not back

    def test_the_first_fitting_without_a_sighup_refits_in_place(self) -> None:
        probe = self.declaration.database_appeared()
        (_, first), = self.migrations
        first.callback(self.prepared(self.at_start))
        self.assertIsNone(self.successResultOf(probe))
        self.assertEqual(list(self.kinds), ["session", "user", "item", "purchase", "level_up"])
        self.assertEqual(len(self.migrations), 1)

    def test_a_breaking_change_is_said_once_and_fails_each_probe(self) -> None:
        breaking = BreakingChanges([Breaking("level_up", "property 'Zone': maxLength lowered from 64 to 8",
                                             "keep maxLength 64")])
        self.declaration.migrate = lambda declared: fail(breaking)
        for _ in range(3):
            self.failureResultOf(self.declaration.database_appeared(), BreakingChanges)
        said = [line for line in self.lines if "cannot be served on it" in line]
        self.assertEqual(len(said), 1)
        self.assertIn("mysql://track:***@db.example:3306/track", said[0])
        self.assertNotIn("secret", said[0])
        self.assertTrue(said[0].endswith("put it right and send SIGHUP"), said[0])
        self.declaration.migrate = lambda declared: succeed(self.prepared(declared))
        self.declaration.serve(self.later, compile_kinds(self.later))
        self.assertIsNone(self.successResultOf(self.declaration.database_appeared()))
