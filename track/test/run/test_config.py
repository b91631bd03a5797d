"""Every option reaches the `--workers` children: the parent's Config,
turned into a worker's argv (track/run/config.py) and parsed back, is the
same Config, field by field, but for the fields that differ by design.

Adding an option means: a value for it in non_default() below (the test says
so when one is missing), a field of Config that names it, and, if the
workers must not get it unchanged, an entry in BY_DESIGN saying why."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from track.run.config import WORKER_HTTP, Config, Parent, Standalone, Worker, worker_args
from track.run.options import HIDDEN, Options
from track.run.secrets import DSN_ENV, WORKER_DSN_FD, pipe_holding
from track.test.run.test_options import every_option

# Twisted's systemd: endpoint can only be parsed in a process that was
# given the socket, so the worker's --http is checked, then parsed as this.
HTTP_STAND_IN = "tcp:0:interface=127.0.0.2"

# The fields a worker gets changed, or not at all, and what it gets instead.
BY_DESIGN: dict[str, Callable[[Config, Worker], Any]] = {
    # Each worker adopts the parent's socket (fd 3), as systemd passes one.
    "endpoint": lambda parent, worker: HTTP_STAND_IN,
    # Only the parent serves the admin listener, from the workers' files.
    "admin_endpoint": lambda parent, worker: None,
    "admin_token": lambda parent, worker: None,
    "admin_hosts": lambda parent, worker: (),
    # A worker is one process.
    "workers": lambda parent, worker: 1,
    # The DSN comes through a pipe (--dsn-file), so no warning about
    # --dsn in ps: the parent gave that once.
    "dsn_password_on_command_line": lambda parent, worker: False,
    # Its own profile and spool directory (a spool is one process's).
    "cpuprofile": lambda parent, worker: f"{parent.cpuprofile}.{worker.index}",
    "spool_dir": lambda parent, worker: os.path.join(parent.spool_dir, f"worker-{worker.index}"),
}

# Dropping these from a worker's argv changes nothing: the worker's value is
# the option's default.
SAME_AS_DEFAULT = {"--workers=1"}


def secret_file(case: SynchronousTestCase, text: str) -> str:
    path: str = os.path.abspath(case.mktemp())
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def events_file(case: SynchronousTestCase) -> str:
    """An events file declaring one kind of its own."""
    return secret_file(case, json.dumps({"kinds": {"level_up": {"schema": {
        "type": "object", "required": ["Level"], "properties": {"Level": {"type": "integer"}}}}}}))


def non_default(case: SynchronousTestCase) -> list[dict[str, list[str]]]:
    """Two command lines that give every option a value other than its
    default (two, as --dsn and --dsn-file, --admin-token and
    --admin-token-file, --verbose and --log-level exclude each other)."""
    spool = os.path.abspath(case.mktemp())
    common = {
        "http": ["--http", "tcp:0:interface=127.0.0.1"],
        "admin-http": ["--admin-http", "tcp:0:interface=127.0.0.1"],
        "admin-host": ["--admin-host", "admin.example", "--admin-host", "proxy.example:8443"],
        "admin-keep": ["--admin-keep", "50"],
        "access-log": ["--access-log"],
        "cpuprofile": ["--cpuprofile", "/tmp/track-test.prof"],
        "batch-size": ["--batch-size", "50"],
        "min-batch": ["--min-batch", "2"],
        "flush-interval": ["--flush-interval", "12.5"],
        "max-pending": ["--max-pending", "77"],
        "request-timeout": ["--request-timeout", "7.5"],
        "spool-dir": ["--spool-dir", spool],
        "outage-wait": ["--outage-wait", "0.5"],
        "spool-max-bytes": ["--spool-max-bytes", "12345"],
        "workers": ["--workers", "3"],
        "max-batch": ["--max-batch", "9"],
        "max-batch-body": ["--max-batch-body", "4321"],
        "max-body": ["--max-body", "2345"],
        "max-connections": ["--max-connections", "99"],
        "anonymize-ip": ["--anonymize-ip", "2"],
        "anonymize-ipv6": ["--anonymize-ipv6", "3"],
        "rate-limit": ["--rate-limit", "2.5"],
        "max-clock-skew": ["--max-clock-skew", "30"],
        "max-event-age": ["--max-event-age", "86400.5"],
        "events": ["--events", events_file(case)],
        "trusted-proxy": ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"],
        "cors-origin": ["--cors-origin", "https://a.example", "--cors-origin", "https://b.example"],
    }
    return [
        {**common,
         "dsn": ["--dsn", "mysql://app:pw@db1:3306,db2:3307/track?connect_timeout=3"],
         "admin-token": ["--admin-token", "tok"],
         "log-level": ["--log-level", "warn"]},
        {**common,
         "dsn-file": ["--dsn-file", secret_file(case, "mysql://app:pw@db.example/track?read_timeout=9")],
         "admin-token-file": ["--admin-token-file", secret_file(case, "token-from-file")],
         "verbose": ["--verbose"]},
    ]


def parse(argv: list[str]) -> Options:
    options = Options()
    options.parseOptions(argv)
    return options


def differences(parent: Config, child: Config, worker: Worker) -> list[str]:
    """Each field where the worker's Config is not what it should be."""
    found = []
    for field in dataclasses.fields(Config):
        expected = BY_DESIGN[field.name](parent, worker) if field.name in BY_DESIGN else getattr(parent, field.name)
        if getattr(child, field.name) != expected:
            found.append(f"{field.name}: {getattr(child, field.name)!r}, expected {expected!r}")
    return found


class WorkerArgvTests(SynchronousTestCase):
    def setUp(self) -> None:
        saved = os.environ.pop(DSN_ENV, None)  # not this test's DSN source
        if saved is not None:
            self.addCleanup(os.environ.__setitem__, DSN_ENV, saved)
        self.worker = Worker(index=2, state="/tmp/track-workers-test", parent=4242, feed=True)

    def parse_as_worker(self, parent: Config, args: list[str]) -> Options:
        """A worker's argv parsed as the worker does, its DSN read from a
        real pipe (on its own descriptor here, not 4)."""
        pipe = pipe_holding(parent.dsn_text) if parent.dsn_text is not None else None
        if pipe is not None:
            self.addCleanup(os.close, pipe)
        stand_ins = {f"--http={WORKER_HTTP}": f"--http={HTTP_STAND_IN}",
                     f"--dsn-file=/dev/fd/{WORKER_DSN_FD}": f"--dsn-file=/dev/fd/{pipe}"}
        return parse([stand_ins.get(arg, arg) for arg in args])

    def test_every_option_has_a_value_in_the_table(self) -> None:
        """A new option needs a non-default value in non_default()."""
        given = set().union(*(set(table) for table in non_default(self)))
        self.assertEqual(set(every_option()) - {"help", "version"}, given)

    def test_every_option_is_read_into_a_field_of_config(self) -> None:
        named = {name for field in dataclasses.fields(Config) for name in field.metadata["options"]}
        self.assertEqual(named, set(every_option()) - {"help", "version"})
        self.assertFalse(named & HIDDEN)  # the role is not configuration

    def test_every_field_is_set_to_a_non_default_value(self) -> None:
        """Otherwise the round trip below could pass without carrying it."""
        default = parse([]).config
        configs = [parse([a for args in table.values() for a in args]).config for table in non_default(self)]
        for field in dataclasses.fields(Config):
            with self.subTest(field=field.name):
                self.assertTrue(any(getattr(c, field.name) != getattr(default, field.name) for c in configs),
                                f"no command line sets {field.name} to other than its default")

    def test_a_worker_parses_back_the_parents_config(self) -> None:
        for table in non_default(self):
            parent_options = parse([a for args in table.values() for a in args])
            parent = parent_options.config
            self.assertEqual(parent_options.role, Parent())
            args = worker_args(parent, self.worker)
            self.assertIn(f"--http={WORKER_HTTP}", args)
            self.assertIn(f"--dsn-file=/dev/fd/{WORKER_DSN_FD}", args)
            self.assertFalse([a for a in args if "pw@" in a], "the DSN is never on a worker's command line")
            child = self.parse_as_worker(parent, args)
            self.assertEqual(child.role, self.worker)
            self.assertEqual(differences(parent, child.config, self.worker), [])

    def test_dropping_any_argument_is_noticed(self) -> None:
        """The round trip is sensitive to each argument the worker gets: with
        any one left out, the worker's Config (or its role) differs, or it
        does not start."""
        for table in non_default(self):
            parent = parse([a for args in table.values() for a in args]).config
            args = worker_args(parent, self.worker)
            for dropped in args:
                if dropped in SAME_AS_DEFAULT:
                    continue
                with self.subTest(dropped=dropped):
                    try:
                        child = self.parse_as_worker(parent, [a for a in args if a != dropped])
                    except UsageError:
                        continue  # noticed: the worker refuses to start
                    self.assertTrue(differences(parent, child.config, self.worker) or child.role != self.worker)

    def test_the_role_comes_from_the_command_line(self) -> None:
        self.assertEqual(parse([]).role, Standalone())
        self.assertEqual(parse(["--workers", "2"]).role, Parent())
        self.assertEqual(parse(self.worker.args()).role, self.worker)
        self.assertEqual(parse(Worker(0, "/s", 7).args()).role, Worker(0, "/s", 7, feed=False))
