"""`python -m track.events`: `original` prints the shipped file exactly,
`check` without a DSN prints the plan for an empty database, a file that
does not parse is status 1, and a wrong command line status 2."""

from __future__ import annotations

import contextlib
import io
import json
import os

from twisted.trial.unittest import SynchronousTestCase

from track.events.__main__ import main
from track.events.files import original_text
from track.test.storage.test_evolve_classify import LEVEL_UP


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse's usage errors
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


class MainTests(SynchronousTestCase):
    def file(self, doc: object) -> str:
        path: str = os.path.abspath(self.mktemp() + ".json")
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def test_original_prints_the_shipped_file_exactly(self) -> None:
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "events", "original.json")
        with open(path, encoding="utf-8") as f:
            shipped = f.read()
        self.assertEqual(run("original"), (0, shipped, ""))
        self.assertEqual(original_text(), shipped)

    def test_check_without_a_dsn_is_the_plan_for_an_empty_database(self) -> None:
        path = self.file({"kinds": {"level_up": LEVEL_UP}})
        for dialect, create in (("mysql", "CREATE TABLE `LevelUpEvent` ("),
                                ("sqlite", 'CREATE TABLE "LevelUpEvent" (')):
            code, out, err = run("check", path, "--empty", dialect)
            lines = out.splitlines()
            self.assertEqual((code, err, lines[0]), (0, "", f"-- {path} on an empty {dialect} database"))
            self.assertEqual(lines[1], "-- schema version 1 (event tables of the original service)")
            self.assertIn("-- kind 'level_up': new kind, table LevelUpEvent", lines)
            self.assertTrue(lines[lines.index("-- kind 'level_up': new kind, table LevelUpEvent") + 1]
                            .startswith(create))
            self.assertTrue(lines[-1].endswith(" statements; nothing was changed"))

    def test_a_file_that_does_not_parse_is_status_1_naming_the_keyword(self) -> None:
        path = self.file({"kinds": {"level_up": {"schema": {"properties": {"A": {"type": "integer", "format": "x"}}}}}})
        code, out, err = run("check", path)
        self.assertEqual((code, out), (1, ""))
        self.assertTrue(err.startswith(f"python -m track.events check: {path}: kind 'level_up', property 'A': "
                                       "keyword 'format' is not supported"), err)
        self.assertEqual(run("check", self.file("{"))[0], 1)

    def test_a_wrong_command_line_is_status_2(self) -> None:
        path = self.file({"kinds": {}})
        for argv in ((), ("nothing",), ("check",), ("original", "extra"), ("check", path, "--empty", "oracle"),
                     ("check", path, "--dsn", "sqlite:///x", "--dsn-file", path), ("check", path, "--dsn", "ftp://x")):
            self.assertEqual(run(*argv)[0], 2, argv)
