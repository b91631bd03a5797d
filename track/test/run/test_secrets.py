"""The DSN's password on no command line: `--dsn-file`, `TRACK_DSN`, and
`--workers` children that get the DSN through a pipe."""

from __future__ import annotations

import os
import re
from dataclasses import replace

import treq
from twisted.python import usage
from twisted.trial.unittest import TestCase

from track.run.options import Options
from track.run.secrets import DSN_ENV
from track.test.mariadb import MYSQL_SKIP
from track.test.process import TwistdTrack, port_of, wait_until
from track.test.support import client_pool, dsn_text, execute, mysql_dsn, reset_mysql

PASSWORD = "pw-off-the-cmdline-7f3a"
USER = "track_i23_secret"
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
_STARTED = re.compile(rb"worker (\d) started \(pid (\d+)\)")


def parse(*argv: str, env: dict[str, str] | None = None) -> Options:
    options = Options()
    saved = dict(os.environ)
    try:
        os.environ.pop(DSN_ENV, None)
        os.environ.update(env or {})
        options.parseOptions(["--http", "tcp:0", *argv])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return options


class DSNSourceTests(TestCase):
    def write(self, text: str, mode: int) -> str:
        path: str = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_dsn_file_readable_by_owner_only_is_read(self) -> None:
        path = self.write("mysql://app:s3cret@db.example:3306/track\n", 0o600)
        dsn = parse("--dsn-file", path).config.dsn
        self.assertEqual((dsn.user, dsn.password, dsn.host, dsn.database), ("app", "s3cret", "db.example", "track"))

    def test_dsn_file_other_users_can_read_is_refused_naming_the_fix(self) -> None:
        path = self.write("mysql://app:s3cret@db.example/track", 0o644)
        e = self.assertRaises(usage.UsageError, parse, "--dsn-file", path)
        self.assertIn(f"--dsn-file: {path} can be read or written by other users (mode 0644)", str(e))
        self.assertIn(f"chmod 600 {path}", str(e))
        self.assertNotIn("s3cret", str(e))

    def test_missing_or_empty_dsn_file_is_refused(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--dsn-file", "/nonexistent/dsn")
        self.assertIn("cannot read /nonexistent/dsn", str(e))
        path = self.write("\n", 0o600)
        e = self.assertRaises(usage.UsageError, parse, "--dsn-file", path)
        self.assertIn("is empty", str(e))

    def test_dsn_and_dsn_file_together_are_refused(self) -> None:
        path = self.write("sqlite:///tmp/x.sqlite3", 0o600)
        e = self.assertRaises(usage.UsageError, parse, "--dsn", "sqlite:///tmp/y", "--dsn-file", path)
        self.assertIn("not both", str(e))

    def test_track_dsn_environment_variable_is_used_when_no_option_is(self) -> None:
        dsn = parse(env={DSN_ENV: "mysql://app:s3cret@db.example/envdb"}).config.dsn
        self.assertEqual((dsn.password, dsn.database), ("s3cret", "envdb"))
        dsn = parse("--dsn", "mysql://a@h/flag", env={DSN_ENV: "mysql://app:s3cret@db.example/envdb"}).config.dsn
        self.assertEqual(dsn.database, "flag")

    def test_a_bad_dsn_in_the_environment_names_its_source_not_its_password(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, env={DSN_ENV: "postgres://app:s3cret@h/db"})
        self.assertTrue(str(e).startswith(f"{DSN_ENV}: "), str(e))
        self.assertNotIn("s3cret", str(e))

    def test_only_a_password_on_the_command_line_is_flagged(self) -> None:
        self.assertTrue(parse("--dsn", "mysql://app:s3cret@h/db").config.dsn_password_on_command_line)
        self.assertFalse(parse("--dsn", "mysql://app@h/db").config.dsn_password_on_command_line)
        self.assertFalse(parse(env={DSN_ENV: "mysql://app:s3cret@h/db"}).config.dsn_password_on_command_line)


class WorkersCmdlineTests(TestCase):
    """A real `twistd track --workers 2` with a password-protected MariaDB
    user: no process's command line (and no worker's environment) holds the
    password, and the workers still store events."""

    skip = MYSQL_SKIP
    timeout = 120

    def setUp(self) -> None:
        root = mysql_dsn(self)
        execute(root, f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'",
                f"ALTER USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'",
                f"GRANT ALL ON `{root.database}`.* TO '{USER}'@'%'")
        self.dsn = dsn_text(replace(root, user=USER, password=PASSWORD))
        reset_mysql(self)

    async def run_workers(self, args: list[str], env: dict[str, str]) -> None:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        saved = dict(os.environ)
        os.environ.update(env)
        try:  # spawnProcess copies the environment at once
            self.proc = TwistdTrack([*args, "--http", "tcp:0:interface=127.0.0.1", "--workers", "2",
                                     "--spool-dir", "spool"], cwd)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.addCleanup(self.proc.stop)
        base = await self.proc.ready
        await wait_until(lambda: len(_STARTED.findall(self.proc.output)) == 2
                         and self.proc.output.count(b"track listening on") >= 3, "two workers listening")
        parent = self.proc.transport.pid
        workers = [int(pid) for _, pid in _STARTED.findall(self.proc.output)]
        for pid in [parent, *workers]:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            self.assertIn(b"track", cmdline)
            self.assertNotIn(PASSWORD.encode(), cmdline, f"the password is in process {pid}'s command line")
        for pid in workers:
            with open(f"/proc/{pid}/environ", "rb") as f:
                self.assertNotIn(PASSWORD.encode(), f.read(), f"the password is in worker {pid}'s environment")
        pool = client_pool(self)
        for n in range(6):
            response = await treq.post(f"http://127.0.0.1:{port_of(base)}/api/1.0/track/user/",
                                       data=f"ProfileID={n}&Region=eu".encode(), pool=pool,
                                       headers=FORM)
            self.assertEqual(response.code, 201, await response.text())
        self.assertEqual(execute(mysql_dsn(self), "SELECT COUNT(*) FROM UserEvent"), [(6,)])
        self.assertNotIn(PASSWORD.encode(), self.proc.output)
        self.assertNotIn(b"carries a password", self.proc.output)

    async def test_dsn_file_reaches_workers_through_a_pipe(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(self.dsn)
        os.chmod(path, 0o600)
        await self.run_workers(["--dsn-file", path], {})

    async def test_track_dsn_is_not_passed_on_in_the_workers_environment(self) -> None:
        await self.run_workers([], {DSN_ENV: self.dsn})

    async def test_a_password_in_dsn_is_warned_about_once_with_the_way_out(self) -> None:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.proc = TwistdTrack(["--dsn", self.dsn, "--http", "tcp:0:interface=127.0.0.1", "--spool-dir", "s"], cwd)
        self.addCleanup(self.proc.stop)
        await self.proc.ready
        self.assertEqual(self.proc.output.count(b"--dsn carries a password"), 1)
        self.assertIn(b"pass --dsn-file PATH, or set TRACK_DSN", self.proc.output)
        self.assertNotIn(PASSWORD.encode(), self.proc.output)
