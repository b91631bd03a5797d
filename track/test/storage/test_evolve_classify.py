"""The classification of every difference between the kinds served and a
database, and the DDL of the additive ones, without a database: tables
are described as this release would make them (or as a test alters them)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from track.events.declared import DeclaredKind
from track.events.files import original_kinds
from track.events.subset import read_kinds
from track.storage.dialect import Dialect, dialect_for
from track.storage.dsn import parse_dsn
from track.storage.evolve.classify import Plan, classify, next_version
from track.storage.evolve.columns import table_columns
from track.storage.evolve.ddl import TableDDL, literal
from track.storage.evolve.frozen import as_real, pending
from track.storage.evolve.real import RealTable
from track.test.events.example import ISSUE_EXAMPLE

MYSQL: Dialect = dialect_for(parse_dsn("mysql://localhost/track"))
SQLITE: Dialect = dialect_for(parse_dsn("sqlite:///track.sqlite3"))

_ISSUE_KIND = ISSUE_EXAMPLE["kinds"]["level_up"]
# The issue's kind, with a pattern property besides.
LEVEL_UP: dict[str, Any] = {"table": "LevelUpEvent", "schema": {
    **_ISSUE_KIND["schema"],
    "properties": {**_ISSUE_KIND["schema"]["properties"],
                   "Nick": {"type": "string", "maxLength": 16, "pattern": "^[a-z]+$"}}}}


def declared(body: dict[str, Any], name: str = "level_up") -> dict[str, DeclaredKind]:
    return read_kinds({"kinds": {name: body}}, "events.json")[0]


def changed(edit: Any) -> dict[str, Any]:
    """LEVEL_UP with `edit(schema)` applied."""
    body = copy.deepcopy(LEVEL_UP)
    edit(body["schema"])
    return body


def made(kind: DeclaredKind, dialect: Dialect = MYSQL) -> RealTable:
    """The table this release creates for `kind`, as the database reports it."""
    columns = table_columns(kind, lambda v: literal(v, dialect.name))
    return RealTable(kind.table, tuple(as_real(c, dialect) for c in columns), autoincrement=True)


def plan(served: dict[str, DeclaredKind], applied: dict[str, DeclaredKind],
         tables: dict[str, RealTable]) -> Plan:
    return classify(served, applied, {k.lower(): t for k, t in tables.items()}, original_kinds())


def statements(p: Plan, tables: dict[str, RealTable], dialect: Dialect = MYSQL) -> list[str]:
    lowered = {k.lower(): t for k, t in tables.items()}
    return [s for _, sql in TableDDL(dialect).statements(p, lowered) for s in sql]


class EvolveCase(SynchronousTestCase):
    def evolve(self, edit: Any, dialect: Dialect = MYSQL,
               table: RealTable | None = None) -> tuple[Plan, list[str]]:
        """The plan and its statements from LEVEL_UP (applied, its table as
        made, or `table`) to LEVEL_UP edited."""
        before = declared(LEVEL_UP)
        tables = {"LevelUpEvent": table or made(before["level_up"], dialect)}
        p = plan(declared(changed(edit)), before, tables)
        return p, statements(p, tables, dialect)

    def additive(self, edit: Any, dialect: Dialect = MYSQL, table: RealTable | None = None) -> list[str]:
        """(log lines, statements) of an additive change."""
        p, sql = self.evolve(edit, dialect, table)
        self.assertEqual(p.breaking, [])
        return [str(c) for c in p.changes] + sql

    def breaking(self, edit: Any) -> list[str]:
        p, _ = self.evolve(edit)
        self.assertNotEqual(p.breaking, [])
        return [str(b) for b in p.breaking]


class NoChangeTests(SynchronousTestCase):
    def test_the_original_four_on_the_original_tables_are_no_change(self) -> None:
        for dialect in (MYSQL, SQLITE):
            _, tables = pending(0, {}, dialect)  # the tables the frozen migrations make
            p = classify(original_kinds(), {}, tables, original_kinds())
            self.assertEqual((p.changes, p.breaking, p.gone), ([], [], []), dialect.name)

    def test_a_kind_on_the_table_made_for_it_is_no_change(self) -> None:
        kinds = declared(LEVEL_UP)
        for dialect in (MYSQL, SQLITE):
            p = plan(kinds, kinds, {"LevelUpEvent": made(kinds["level_up"], dialect)})
            self.assertEqual((p.changes, p.breaking), ([], []))

    def test_a_column_widened_by_hand_is_left_as_it_is(self) -> None:
        kind = declared(LEVEL_UP)["level_up"]
        table = made(kind)
        wide = tuple(dataclasses.replace(c, length=200, type="varchar(200)") if c.name == "Zone" else c
                     for c in table.columns)
        self.assertEqual(
            plan({"level_up": kind}, {"level_up": kind}, {"LevelUpEvent": RealTable(kind.table, wide)}).changes, [])


class AdditiveTests(EvolveCase):
    def test_a_new_kind_is_a_new_table(self) -> None:
        kinds = declared(LEVEL_UP)
        p = plan(kinds, {}, {})
        self.assertEqual([str(c) for c in p.changes], ["kind 'level_up': new kind, table LevelUpEvent"])
        self.assertEqual(statements(p, {}), [
            "CREATE TABLE `LevelUpEvent` (`EventID` bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "`PlayerID` int NOT NULL, `Level` int NOT NULL, `Class` varchar(7) NULL, `Zone` varchar(64) NULL, "
            "`Reward` decimal(19,4) NULL, `Hardcore` tinyint(1) NULL, `Nick` varchar(16) NULL, "
            "`MessageID` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NULL, "
            "`Created` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE KEY `MessageID` (`MessageID`)) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"])
        self.assertEqual(statements(p, {}, SQLITE), [
            'CREATE TABLE "LevelUpEvent" ("EventID" INTEGER PRIMARY KEY AUTOINCREMENT, "PlayerID" INTEGER NOT NULL, '
            '"Level" INTEGER NOT NULL, "Class" TEXT NULL, "Zone" TEXT NULL, "Reward" TEXT NULL, '
            '"Hardcore" INTEGER NULL, "Nick" TEXT NULL, "MessageID" TEXT NULL, '
            '"Created" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)',
            'CREATE UNIQUE INDEX "LevelUpEvent_MessageID" ON "LevelUpEvent" ("MessageID")'])

    def test_the_columns_of_each_type(self) -> None:
        kind = declared({"schema": {"properties": {
            "Big": {"type": "integer", "minimum": 0, "maximum": 2**40},
            "At": {"type": "string", "format": "date-time"},
            "Price": {"type": "number", "multipleOf": 0.01, "default": 1.5},
            "Text": {"type": "string", "default": "it's a \\ back"},
            "On": {"type": "boolean", "default": True}}}})
        (create,) = statements(plan(kind, {}, {}), {})
        self.assertIn("`Big` bigint NULL, `At` datetime(6) NULL, `Price` decimal(19,2) NULL DEFAULT 1.5, "
                      "`Text` varchar(255) NULL DEFAULT 'it''s a \\\\ back', `On` tinyint(1) NULL DEFAULT 1", create)
        create, _ = statements(plan(kind, {}, {}), {}, SQLITE)
        self.assertIn('"Big" INTEGER NULL, "At" TEXT NULL, "Price" TEXT NULL DEFAULT \'1.5\', '
                      '"Text" TEXT NULL DEFAULT \'it\'\'s a \\ back\', "On" INTEGER NULL DEFAULT 1', create)

    def test_a_new_optional_property_is_a_new_column(self) -> None:
        def add(schema: dict[str, Any]) -> None:
            schema["properties"]["Guild"] = {"type": "string", "maxLength": 32}
            schema["properties"]["Tier"] = {"type": "integer", "default": 3}

        self.assertEqual(self.additive(add), [
            "kind 'level_up': new optional property 'Guild'",
            "kind 'level_up': new optional property 'Tier' with its default",
            "ALTER TABLE `LevelUpEvent` ADD COLUMN `Guild` varchar(32) NULL",
            "ALTER TABLE `LevelUpEvent` ADD COLUMN `Tier` int NULL DEFAULT 3"])
        self.assertEqual(self.additive(add, SQLITE)[2:], [
            'ALTER TABLE "LevelUpEvent" ADD COLUMN "Guild" TEXT NULL',
            'ALTER TABLE "LevelUpEvent" ADD COLUMN "Tier" INTEGER NULL DEFAULT 3'])

    def test_a_longer_max_length_widens_the_column(self) -> None:
        def longer(schema: dict[str, Any]) -> None:
            schema["properties"]["Zone"]["maxLength"] = 128

        self.assertEqual(self.additive(longer), [
            "kind 'level_up': property 'Zone': maxLength raised from 64 to 128; column LevelUpEvent.Zone widened "
            "from varchar(64) to varchar(128)",
            "ALTER TABLE `LevelUpEvent` MODIFY COLUMN `Zone` varchar(128) NULL"])
        self.assertEqual(self.additive(longer, SQLITE)[1:], [])  # SQLite limits no length

    def test_a_longer_max_length_on_a_column_already_wider_needs_no_ddl(self) -> None:
        table = made(declared(LEVEL_UP)["level_up"])
        table = RealTable(table.name, tuple(dataclasses.replace(c, length=200, type="varchar(200)")
                                            if c.name == "Zone" else c for c in table.columns))
        self.assertEqual(self.additive(lambda s: s["properties"]["Zone"].update(maxLength=128), table=table),
                         ["kind 'level_up': property 'Zone': maxLength raised from 64 to 128"])

    def test_a_wider_integer_range_makes_the_column_64_bit_when_it_must(self) -> None:
        self.assertEqual(self.additive(lambda s: s["properties"]["Level"].update(maximum=1000)),
                         ["kind 'level_up': property 'Level': range widened to 1 .. 1000"])
        self.assertEqual(self.additive(lambda s: s["properties"]["PlayerID"].update(maximum=2**40)), [
            "kind 'level_up': property 'PlayerID': range widened to -2147483648 .. 1099511627776; column "
            "LevelUpEvent.PlayerID widened from int to bigint",
            "ALTER TABLE `LevelUpEvent` MODIFY COLUMN `PlayerID` bigint NOT NULL"])

    def test_a_new_enum_value_widens_the_column_when_it_is_longer(self) -> None:
        self.assertEqual(self.additive(lambda s: s["properties"]["Class"]["enum"].append("necromancer")), [
            "kind 'level_up': property 'Class': enum gains 'necromancer'; column LevelUpEvent.Class widened from "
            "varchar(7) to varchar(11)",
            "ALTER TABLE `LevelUpEvent` MODIFY COLUMN `Class` varchar(11) NULL"])
        self.assertEqual(self.additive(lambda s: s["properties"]["Class"]["enum"].append("monk")),
                         ["kind 'level_up': property 'Class': enum gains 'monk'"])

    def test_a_required_property_made_optional_lets_its_column_take_null(self) -> None:
        def optional(schema: dict[str, Any]) -> None:
            schema["required"].remove("Level")

        self.assertEqual(self.additive(optional), [
            "kind 'level_up': property 'Level': made optional; column LevelUpEvent.Level now takes NULL",
            "ALTER TABLE `LevelUpEvent` MODIFY COLUMN `Level` int NULL"])
        sqlite = self.additive(optional, SQLITE)
        self.assertEqual(sqlite[1:], [  # SQLite cannot alter a column: the table is made again
            'CREATE TABLE "LevelUpEvent__track_rebuild" ("EventID" INTEGER PRIMARY KEY AUTOINCREMENT, '
            '"PlayerID" INTEGER NOT NULL, "Level" INTEGER, "Class" TEXT, "Zone" TEXT, "Reward" TEXT, '
            '"Hardcore" INTEGER, "Nick" TEXT, "MessageID" TEXT, "Created" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)',
            'INSERT INTO "LevelUpEvent__track_rebuild" ("EventID", "PlayerID", "Level", "Class", "Zone", "Reward", '
            '"Hardcore", "Nick", "MessageID", "Created") SELECT "EventID", "PlayerID", "Level", "Class", "Zone", '
            '"Reward", "Hardcore", "Nick", "MessageID", "Created" FROM "LevelUpEvent"',
            'DROP TABLE "LevelUpEvent"',
            "PRAGMA legacy_alter_table = ON",
            'ALTER TABLE "LevelUpEvent__track_rebuild" RENAME TO "LevelUpEvent"',
            "PRAGMA legacy_alter_table = OFF"])

    def test_rules_that_live_only_in_validation_need_no_ddl(self) -> None:
        self.assertEqual(self.additive(lambda s: s["properties"]["Nick"].pop("pattern")),
                         ["kind 'level_up': property 'Nick': pattern removed"])
        self.assertEqual(self.additive(lambda s: s["properties"]["Level"].pop("minimum")),
                         ["kind 'level_up': property 'Level': range widened to -2147483648 .. 100"])
        self.assertEqual(self.additive(lambda s: s["properties"]["Reward"].update(default=2)),
                         ["kind 'level_up': property 'Reward': default now 2"])

    def test_an_optional_property_removed_leaves_its_column(self) -> None:
        self.assertEqual(self.additive(lambda s: s["properties"].pop("Zone")), [
            "kind 'level_up': property 'Zone' removed: column LevelUpEvent.Zone stays, and events from now on "
            "leave it NULL"])

    def test_a_kind_removed_from_the_file_is_said_and_its_table_stays(self) -> None:
        kinds = declared(LEVEL_UP)
        p = plan({}, kinds, {"LevelUpEvent": made(kinds["level_up"])})
        self.assertEqual((p.changes, p.breaking), ([], []))
        self.assertEqual(p.gone, ["kind 'level_up' is no longer served; its table LevelUpEvent stays, and its "
                                  "events still in a spool go to the dead letters at replay"])


class BreakingTests(EvolveCase):
    def test_a_type_changed(self) -> None:
        self.assertEqual(self.breaking(lambda s: s["properties"].update(Zone={"type": "integer"})), [
            "kind 'level_up': property 'Zone': type changed from string to integer; to do: keep it string, or "
            "declare level_up_2 with its own table (LevelUp2Event) for the new shape"])
        self.assertEqual(self.breaking(lambda s: s["properties"]["Zone"].update(format="date-time",
                                                                                maxLength=35))[0][:87],
                         "kind 'level_up': property 'Zone': type changed from string to string (date-time); to do")

    def test_a_narrower_limit(self) -> None:
        def first(edit: Any) -> str:
            return self.breaking(edit)[0].split("; to do: ")[0]

        self.assertEqual(first(lambda s: s["properties"]["Zone"].update(maxLength=32)),
                         "kind 'level_up': property 'Zone': maxLength lowered from 64 to 32")
        self.assertEqual(first(lambda s: s["properties"]["Level"].update(maximum=50)),
                         "kind 'level_up': property 'Level': maximum lowered from 100 to 50")
        self.assertEqual(first(lambda s: s["properties"]["Level"].update(minimum=2)),
                         "kind 'level_up': property 'Level': minimum raised from 1 to 2")
        self.assertEqual(first(lambda s: s["properties"]["Reward"].update(maximum=10)),
                         "kind 'level_up': property 'Reward': maximum lowered from none to 10")
        self.assertEqual(first(lambda s: s["properties"]["Class"]["enum"].remove("mage")),
                         "kind 'level_up': property 'Class': enum value(s) removed: 'mage'")
        self.assertEqual(first(lambda s: s["properties"]["Reward"].update(multipleOf=0.01)),
                         "kind 'level_up': property 'Reward': decimal places (multipleOf) changed from 4 to 2")
        self.assertEqual(first(lambda s: s["properties"]["Zone"].update(enum=["north"])),
                         "kind 'level_up': property 'Zone': enum added (values taken before may not be in it)")
        self.assertEqual(first(lambda s: s["properties"]["Class"].update(enum=["mage"], maxLength=5)),
                         "kind 'level_up': property 'Class': maxLength lowered from 7 to 5")

    def test_a_narrower_limit_says_what_to_keep(self) -> None:
        self.assertEqual(self.breaking(lambda s: s["properties"]["Level"].update(maximum=50)), [
            "kind 'level_up': property 'Level': maximum lowered from 100 to 50; to do: keep maximum 100, or declare "
            "level_up_2 with its own table (LevelUp2Event) for the new shape"])

    def test_a_new_required_property(self) -> None:
        def add(schema: dict[str, Any]) -> None:
            schema["properties"]["Guild"] = {"type": "string"}
            schema["required"].append("Guild")

        self.assertEqual(self.breaking(add), [
            "kind 'level_up': property 'Guild' is new and required (events sent before lack it); to do: declare "
            "it optional, or declare level_up_2 with its own table (LevelUp2Event) for the new shape"])

    def test_an_optional_property_made_required(self) -> None:
        self.assertEqual(self.breaking(lambda s: s["required"].append("Zone"))[0].split("; to do")[0],
                         "kind 'level_up': property 'Zone': made required (events stored and in flight may lack it)")

    def test_a_pattern_added_or_changed(self) -> None:
        self.assertEqual(self.breaking(lambda s: s["properties"]["Zone"].update(pattern="^[a-z]+$"))[0]
                         .split("; to do")[0], "kind 'level_up': property 'Zone': pattern '^[a-z]+$' added")
        self.assertEqual(self.breaking(lambda s: s["properties"]["Nick"].update(pattern="^[a-z]*$"))[0]
                         .split("; to do")[0],
                         "kind 'level_up': property 'Nick': pattern changed from '^[a-z]+$' to '^[a-z]*$'")

    def test_a_required_property_removed_whose_column_takes_no_null(self) -> None:
        def remove(schema: dict[str, Any]) -> None:
            del schema["properties"]["Level"]
            schema["required"].remove("Level")

        self.assertEqual(self.breaking(remove), [
            "kind 'level_up': property 'Level' removed, but column LevelUpEvent.Level is NOT NULL without a "
            "default: every insert would fail; to do: keep Level declared (optional is enough), or declare "
            "level_up_2 with its own table (LevelUp2Event) for the new shape"])

    def test_a_kinds_table_changed(self) -> None:
        before = declared(LEVEL_UP)
        p = plan(declared({**LEVEL_UP, "table": "LevelUps"}), before,
                 {"LevelUpEvent": made(before["level_up"])})
        self.assertEqual([str(b) for b in p.breaking], [
            "kind 'level_up': table changed from LevelUpEvent to LevelUps; to do: keep table LevelUpEvent, or "
            "declare a new kind (such as level_up_2) for table LevelUps"])

    def test_a_table_that_cannot_hold_the_values_without_a_record(self) -> None:
        """No declaration recorded (a table made by hand): the columns alone."""
        kind = declared(LEVEL_UP)["level_up"]
        table = made(kind)
        table = RealTable(table.name, tuple(dataclasses.replace(c, holds=frozenset({"integer"}), type="int")
                                            if c.name == "Zone" else c for c in table.columns))
        self.assertEqual([str(b).split("; to do")[0] for b in plan({"level_up": kind}, {}, {"LevelUpEvent": table})
                          .breaking], ["kind 'level_up': property 'Zone': column Zone is int, which cannot hold "
                                       "string values"])

    def test_the_original_kinds_are_compared_with_the_shipped_file_before_any_record(self) -> None:
        session = copy.deepcopy(original_kinds()["session"].schema)
        session["schema"]["properties"]["SessionID"]["maxLength"] = 16
        _, tables = pending(0, {}, MYSQL)
        p = classify(declared(session, "session"), {}, tables, original_kinds())
        self.assertEqual([str(b).split("; to do")[0] for b in p.breaking],
                         ["kind 'session': property 'SessionID': maxLength lowered from 32 to 16"])

    def test_every_breaking_change_is_listed(self) -> None:
        def both(schema: dict[str, Any]) -> None:
            schema["properties"]["Zone"]["maxLength"] = 8
            schema["properties"]["Level"]["type"] = "number"

        self.assertEqual(len(self.breaking(both)), 2)


class NamesTests(SynchronousTestCase):
    def test_the_next_version_of_a_kind(self) -> None:
        self.assertEqual([next_version(k) for k in ("level_up", "level_up_2", "page_view_9", "a")],
                         ["level_up_2", "level_up_3", "page_view_10", "a_2"])
