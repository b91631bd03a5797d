"""Declared kinds on a real database (SQLite, and MariaDB when
TRACK_TEST_MYSQL_DSN is set): their tables made at start, additive changes
applied at a restart with the rows intact, breaking ones refused with
nothing written, and `python -m track.events check` printing what a start
would do, and doing nothing."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import TestCase

from track.events.__main__ import main as events_main
from track.events.files import served_kinds
from track.fields.kinds import parse_event
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN
from track.storage.evolve.catalogue import read_tables
from track.storage.evolve.frozen import pending
from track.storage.prepare import migrate_on_own_connection, prepare_database
from track.storage.schema import V1_TABLES, migrate
from track.storage.store import Store
from track.test.storage.test_evolve_classify import LEVEL_UP
from track.test.support import MYSQL_SKIP, ORIGINAL_MYSQL_DDL, dsn_text, execute, logged, reset_mysql, sqlite_dsn
from track.test.test_docs import docs_root, skip_without_docs

NOW = datetime(2026, 12, 7, 12, 0, 0)

if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object


def run_check(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = events_main(["check", *args])
    return code, out.getvalue(), err.getvalue()


class _Recording:
    """A connection whose cursors keep every statement they run."""

    def __init__(self, conn: Any, seen: list[str]) -> None:
        self.conn, self.seen = conn, seen

    def cursor(self) -> Any:
        cursor, seen = self.conn.cursor(), self.seen

        class Cursor:
            def execute(self, sql: str, params: Any = None) -> Any:
                seen.append(sql)
                return cursor.execute(sql) if params is None else cursor.execute(sql, params)

            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

        return Cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class EvolveMixin(_MixinBase):
    dsn: DSN

    def events_file(self, body: dict[str, Any] | None = None, **more: Any) -> str:
        path: str = os.path.abspath(self.mktemp() + ".json")
        with open(path, "w") as f:
            json.dump({"kinds": {"level_up": body or LEVEL_UP, **more}}, f)
        return path

    def start(self, path: str | None) -> dict[str, Any]:
        kinds = prepare_database(self.dsn, served_kinds(path))
        assert kinds is not None
        return kinds

    async def store(self, kind: Any, *events: dict[str, Any]) -> None:
        store = Store(dialect_for(self.dsn))
        self.addCleanup(store.close)
        rows = [parse_event(kind, e, "203.0.113.9", NOW) for e in events]
        self.assertIsNone(await store.insert(kind, rows))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in execute(self.dsn, sql)]

    def schema(self) -> Any:
        """Every table's columns, and the recorded declarations: what a
        refused start must leave exactly as it was."""
        conn = dialect_for(self.dsn).connect()
        try:
            names = [*V1_TABLES, "LevelUpEvent", "LevelUps", "TrackEventKinds"]
            tables = read_tables(conn.cursor(), dialect_for(self.dsn), names)
        finally:
            conn.close()
        return tables, self.rows('SELECT * FROM TrackEventKinds ORDER BY Kind')

    async def test_a_fresh_database_gets_the_declared_tables(self) -> None:
        kinds = self.start(self.events_file())
        self.assertEqual(list(kinds), ["session", "user", "item", "purchase", "level_up"])
        await self.insert_level_up(kinds)
        self.assertEqual(self.rows("SELECT PlayerID, Level, Class, Zone, Reward, Hardcore, Nick, MessageID "
                                   "FROM LevelUpEvent"),
                         [(7, 42, "mage", "north", self.money("1.5000"), 1, None, "m-1")])

    def money(self, text: str) -> Any:
        return Decimal(text) if self.dsn.kind == "mysql" else text

    async def insert_level_up(self, kinds: dict[str, Any], **more: Any) -> None:
        await self.store(kinds["level_up"], {"PlayerID": "7", "Level": "42", "Class": "mage", "Zone": "north",
                                       "Reward": "1.5", "Hardcore": "true", "MessageID": "m-1", **more})

    async def test_an_additive_change_at_restart_keeps_the_rows(self) -> None:
        kinds = self.start(self.events_file())
        await self.insert_level_up(kinds)
        later = copy.deepcopy(LEVEL_UP)
        props = later["schema"]["properties"]
        props["Guild"] = {"type": "string", "maxLength": 32}
        props["Zone"]["maxLength"] = 128
        props["Class"]["enum"].append("necromancer")
        later["schema"]["required"].remove("Level")
        lines = logged(self)
        kinds = self.start(self.events_file(later))

        self.assertEqual(self.rows("SELECT PlayerID, Level, Class, Zone, Guild, MessageID FROM LevelUpEvent"),
                         [(7, 42, "mage", "north", None, "m-1")])
        await self.store(kinds["level_up"], {"PlayerID": "8", "Class": "necromancer", "Zone": "z" * 128,
                                       "Guild": "owls", "MessageID": "m-2"})
        self.assertEqual(self.rows("SELECT PlayerID, Level, Class, LENGTH(Zone), Guild FROM LevelUpEvent "
                                   "ORDER BY PlayerID"),
                         [(7, 42, "mage", 5, None), (8, None, "necromancer", 128, "owls")])
        changes = [line for line in lines if "kind 'level_up'" in line]
        self.assertEqual([line.split(": ", 1)[1].split(": ALTER")[0].split(": CREATE")[0] for line in changes], [
            "kind 'level_up': property 'Level': made optional; column LevelUpEvent.Level now takes NULL",
            *(["kind 'level_up': property 'Class': enum gains 'necromancer'; column LevelUpEvent.Class "
               "widened from varchar(7) to varchar(11)",
               "kind 'level_up': property 'Zone': maxLength raised from 64 to 128; column LevelUpEvent.Zone "
               "widened from varchar(64) to varchar(128)"] if self.dsn.kind == "mysql" else
              ["kind 'level_up': property 'Class': enum gains 'necromancer'",
               "kind 'level_up': property 'Zone': maxLength raised from 64 to 128"]),
            "kind 'level_up': new optional property 'Guild'"])
        # Started again with the same file: nothing more to do.
        lines.clear()
        self.start(self.events_file(later))
        self.assertEqual([line for line in lines if "kind" in line], [])

    async def test_each_breaking_change_is_refused_and_nothing_is_written(self) -> None:
        kinds = self.start(self.events_file())
        await self.insert_level_up(kinds)
        before = self.schema()

        def edited(edit: Any) -> dict[str, Any]:
            body = copy.deepcopy(LEVEL_UP)
            edit(body)
            return body

        def required(body: dict[str, Any]) -> None:
            body["schema"]["properties"]["Guild"] = {"type": "string"}
            body["schema"]["required"].append("Guild")

        def removed(body: dict[str, Any]) -> None:
            del body["schema"]["properties"]["Level"]
            body["schema"]["required"].remove("Level")

        cases = [
            (lambda b: b["schema"]["properties"].update(Zone={"type": "integer"}),
             "property 'Zone': type changed from string to integer"),
            (lambda b: b["schema"]["properties"]["Zone"].update(maxLength=8),
             "property 'Zone': maxLength lowered from 64 to 8"),
            (lambda b: b["schema"]["properties"]["Level"].update(maximum=50),
             "property 'Level': maximum lowered from 100 to 50"),
            (lambda b: b["schema"]["properties"]["Class"]["enum"].remove("rogue"),
             "property 'Class': enum value(s) removed: 'rogue'"),
            (lambda b: b["schema"]["properties"]["Reward"].update(multipleOf=0.01),
             "property 'Reward': decimal places (multipleOf) changed from 4 to 2"),
            (required, "property 'Guild' is new and required"),
            (lambda b: b["schema"]["properties"]["Zone"].update(pattern="^[a-z]+$"),
             "property 'Zone': pattern '^[a-z]+$' added"),
            (removed, "property 'Level' removed, but column LevelUpEvent.Level is NOT NULL without a default"),
            (lambda b: b.update(table="LevelUps"), "table changed from LevelUpEvent to LevelUps"),
        ]
        for edit, said in cases:
            with self.assertRaises(SystemExit) as stopped:
                self.start(self.events_file(edited(edit)))
            message = str(stopped.exception.code)
            self.assertTrue(message.startswith(f"track: the event kinds cannot be served on {self.dsn.redacted()}: "
                                               "1 breaking change (nothing was changed):\n  kind 'level_up': "),
                            message)
            self.assertIn(said, message)
            self.assertIn("level_up_2", message)  # what to do instead
            self.assertEqual(self.schema(), before, said)

    def test_check_prints_what_a_start_does_and_does_nothing(self) -> None:
        path = self.events_file()
        code, fresh, _ = run_check(path, "--dsn", dsn_text(self.dsn))
        self.assertEqual(code, 0)
        lines = fresh.splitlines()
        self.assertEqual(lines[0], f"-- {path} on {self.dsn.redacted()}")
        self.assertEqual([line for line in lines if line.startswith("-- ")][1:], [
            "-- schema version 1 (event tables of the original service)",
            "-- schema version 2 (MessageID idempotency keys)",
            "-- schema version 3 (Language and IsRented columns): nothing to do",
            "-- kind 'level_up': new kind, table LevelUpEvent",
            f"-- {14 if self.dsn.kind == 'sqlite' else 9} statements; nothing was changed"])
        self.assertTrue(all(line.endswith(";") for line in lines if not line.startswith("-- ")))
        if self.dsn.kind == "sqlite":
            self.assertFalse(os.path.exists(self.dsn.path))  # not even created
        else:
            self.assertEqual(execute(self.dsn, "SHOW TABLES"), [])

        self.start(path)
        # On the migrated database: nothing; then a file with an additive change.
        self.assertEqual(run_check(path, "--dsn", dsn_text(self.dsn))[1].splitlines()[1:], ["-- no change"])
        later = copy.deepcopy(LEVEL_UP)
        later["schema"]["properties"]["Guild"] = {"type": "string", "maxLength": 32}
        code, out, _ = run_check(self.events_file(later), "--dsn", dsn_text(self.dsn))
        quote = "`" if self.dsn.kind == "mysql" else '"'
        column = "varchar(32)" if self.dsn.kind == "mysql" else "TEXT"
        self.assertEqual((code, out.splitlines()[1:]), (0, [
            "-- kind 'level_up': new optional property 'Guild'",
            f"ALTER TABLE {quote}LevelUpEvent{quote} ADD COLUMN {quote}Guild{quote} {column} NULL;",
            "-- 1 statement; nothing was changed"]))

    def test_check_names_each_breaking_change_with_status_1(self) -> None:
        self.start(self.events_file())
        later = copy.deepcopy(LEVEL_UP)
        later["schema"]["properties"]["Zone"]["maxLength"] = 8
        later["schema"]["properties"]["Level"]["minimum"] = 5
        path = self.events_file(later)
        before = self.schema()
        code, out, err = run_check(path, "--dsn", dsn_text(self.dsn))
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err.splitlines(), [
            f"python -m track.events check: {path} cannot be served on {self.dsn.redacted()}: 2 breaking changes:",
            "  kind 'level_up': property 'Level': minimum raised from 1 to 5; to do: keep minimum 1, or declare "
            "level_up_2 with its own table (LevelUp2Event) for the new shape",
            "  kind 'level_up': property 'Zone': maxLength lowered from 64 to 8; to do: keep maxLength 64, or "
            "declare level_up_2 with its own table (LevelUp2Event) for the new shape"])
        self.assertEqual(self.schema(), before)

    def test_the_frozen_migrations_run_what_check_prints_for_them(self) -> None:
        dialect = dialect_for(self.dsn)
        steps, _ = pending(0, {}, dialect)
        seen: list[str] = []
        conn = dialect.connect()
        try:
            migrate(_Recording(conn, seen), dialect)
        finally:
            conn.close()
        ddl = [s for s in seen if s.startswith(("CREATE TABLE `", 'CREATE TABLE "', "ALTER", "CREATE UNIQUE"))]
        self.assertEqual(ddl, [s for _, statements in steps for s in statements])

    def test_a_kind_removed_is_said_and_its_table_kept(self) -> None:
        self.start(self.events_file())
        lines = logged(self)
        kinds = self.start(None)
        self.assertNotIn("level_up", kinds)
        self.assertIn(f"{self.dsn.redacted()}: kind 'level_up' is no longer served; its table LevelUpEvent stays, "
                      "and its events still in a spool go to the dead letters at replay", lines)
        self.assertEqual(self.rows("SELECT COUNT(*) FROM LevelUpEvent"), [(0,)])


class SQLiteEvolveTests(EvolveMixin, TestCase):
    def setUp(self) -> None:
        self.dsn = sqlite_dsn(self)

    async def test_a_rebuilt_table_keeps_its_rows_key_and_unique_index(self) -> None:
        kinds = self.start(self.events_file())
        await self.insert_level_up(kinds)
        later = copy.deepcopy(LEVEL_UP)
        later["schema"]["required"].remove("Level")
        kinds = self.start(self.events_file(later))
        await self.store(kinds["level_up"], {"PlayerID": "8", "MessageID": "m-2"},
                         {"PlayerID": "9", "MessageID": "m-1"})
        self.assertEqual(self.rows("SELECT EventID, PlayerID, Level, MessageID FROM LevelUpEvent ORDER BY EventID"),
                         [(1, 7, 42, "m-1"), (2, 8, None, "m-2")])  # m-1 again: stored once

    async def test_a_rebuilt_table_keeps_its_triggers_and_the_views_on_it(self) -> None:
        """A user's view over the table, and a trigger on it, both still
        work after the rebuild (the view used to fail the start)."""
        kinds = self.start(self.events_file())
        await self.insert_level_up(kinds)
        execute(self.dsn, "CREATE VIEW HighLevels AS SELECT PlayerID, Level FROM LevelUpEvent WHERE Level > 10",
                "CREATE TABLE Audit (PlayerID INTEGER)",
                "CREATE TRIGGER LevelUpAudit AFTER INSERT ON LevelUpEvent BEGIN "
                "INSERT INTO Audit (PlayerID) VALUES (new.PlayerID); END")
        later = copy.deepcopy(LEVEL_UP)
        later["schema"]["required"].remove("Level")
        kinds = self.start(self.events_file(later))
        await self.store(kinds["level_up"], {"PlayerID": "8", "MessageID": "m-2"},
                         {"PlayerID": "9", "Level": "50", "MessageID": "m-3"})
        self.assertEqual(self.rows("SELECT PlayerID, Level FROM HighLevels ORDER BY PlayerID"), [(7, 42), (9, 50)])
        self.assertEqual(self.rows("SELECT PlayerID FROM Audit ORDER BY PlayerID"), [(8,), (9,)])
        self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])


class MySQLEvolveTests(EvolveMixin, TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)

    def test_a_database_the_original_made_is_no_change(self) -> None:
        execute(self.dsn, *ORIGINAL_MYSQL_DDL)
        prepared = migrate_on_own_connection(dialect_for(self.dsn), served_kinds(None))
        self.assertEqual([line.split(" (")[0] for line in prepared.done],
                         ["schema version 1", "schema version 2", "schema version 3"])

    def test_the_frozen_migrations_on_the_originals_database_run_what_check_prints(self) -> None:
        execute(self.dsn, *ORIGINAL_MYSQL_DDL)
        dialect = dialect_for(self.dsn)
        conn = dialect.connect()
        try:
            tables = read_tables(conn.cursor(), dialect, V1_TABLES)
            steps, _ = pending(0, tables, dialect)
            seen: list[str] = []
            migrate(_Recording(conn, seen), dialect)
        finally:
            conn.close()
        self.assertEqual([s for s in seen if s.startswith(("CREATE TABLE `", "ALTER"))],
                         [s for _, statements in steps for s in statements])
        self.assertEqual(len([s for _, statements in steps for s in statements]), 4)  # the MessageIDs


    def test_a_widened_column_keeps_its_own_collation_and_comment(self) -> None:
        """MODIFY COLUMN restates a column whole: a DBA's case-sensitive
        collation and comment on Zone survive its maxLength raised."""
        self.start(self.events_file())
        execute(self.dsn, "ALTER TABLE LevelUpEvent MODIFY COLUMN Zone varchar(64) COLLATE utf8mb4_bin NULL "
                          "COMMENT 'the map''s zone, as the \\\\game\\\\ names it'")
        later = copy.deepcopy(LEVEL_UP)
        later["schema"]["properties"]["Zone"]["maxLength"] = 128
        lines = logged(self)
        self.start(self.events_file(later))
        self.assertIn("ALTER TABLE `LevelUpEvent` MODIFY COLUMN `Zone` varchar(128) NULL COLLATE `utf8mb4_bin` "
                      "COMMENT 'the map''s zone, as the \\\\game\\\\ names it'", "\n".join(lines))
        self.assertEqual(self.rows("SELECT COLUMN_TYPE, COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                                   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'LevelUpEvent' "
                                   "AND COLUMN_NAME = 'Zone'"),
                         [("varchar(128)", "utf8mb4_bin", "the map's zone, as the \\game\\ names it")])
        # A column with the table's collation and no comment is restated as before.
        later["schema"]["properties"]["Class"]["enum"].append("necromancer")
        lines.clear()
        self.start(self.events_file(later))
        self.assertTrue(any(line.endswith("ALTER TABLE `LevelUpEvent` MODIFY COLUMN `Class` varchar(11) NULL")
                            for line in lines), lines)


class DocsTests(TestCase):
    """docs/events.md shows check's real output."""

    skip = MYSQL_SKIP
    SHOWN_DSN = "mysql://track@db.example/track"

    def test_the_check_examples_are_what_check_prints(self) -> None:
        skip_without_docs()  # the checkout's docs, also when the tests import an installed track (CI)
        with open(os.path.join(docs_root(), "docs", "events.md"), encoding="utf-8") as f:
            text = f.read()
        example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))  # type: ignore[union-attr]
        shown = re.findall(r"```console\n(\$ python -m track\.events check .*?)```", text, re.S)
        self.assertEqual(len(shown), 2)
        dsn = reset_mysql(self)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        path = os.path.join(cwd, "events.json")
        with open(path, "w") as f:
            json.dump(example, f)
        prepare_database(dsn, served_kinds(path))

        def edited(edit: Any) -> None:
            body = copy.deepcopy(example)
            edit(body["kinds"]["level_up"]["schema"]["properties"])
            with open(path, "w") as f:
                json.dump(body, f)

        def additive(props: dict[str, Any]) -> None:
            props["Class"]["enum"].append("necromancer")
            props["Zone"]["maxLength"] = 128
            props["Guild"] = {"type": "string", "maxLength": 32}

        def breaking(props: dict[str, Any]) -> None:
            props["Level"]["maximum"] = 50
            props["Zone"] = {"type": "integer"}

        real = dsn.redacted()
        for edit, block in zip((additive, breaking), shown, strict=True):
            edited(edit)
            command, *expected = block.rstrip("\n").split("\n")
            args = command.split(" check ", 1)[1].replace(self.SHOWN_DSN, dsn_text(dsn)).split()
            old = os.getcwd()
            os.chdir(cwd)  # the file named as the docs name it
            try:
                code, out, err = run_check(*args)
            finally:
                os.chdir(old)
            printed = (out + err).replace(real, "mysql://track@db.example:3306/track").splitlines()
            if code:
                printed += ["$ echo $?", str(code)]
            self.assertEqual(printed, expected)
