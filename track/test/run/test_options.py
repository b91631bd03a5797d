"""`twistd track` options: --http forms, --dsn, log levels, knobs, --version."""

from __future__ import annotations

import inspect
import io
import os
import re
import sys
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track import __version__
from track.events.files import original_text
from track.run.config import Worker
from track.run.listen import endpoint_description
from track.run.options import HIDDEN, Options
from track.run.workers import bind, child_argv


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def every_option() -> dict[str, tuple[str | None, str, str | None]]:
    """Each long option Options accepts: its short form, its description and
    its default (None for flags, for methods and when there is none)."""
    found: dict[str, tuple[str | None, str, str | None]] = {}
    parameters = cast("list[list[Any]]", Options.optParameters)
    flags = cast("list[list[Any]]", Options.optFlags)
    for name, short, default, doc, *_ in parameters:
        found[name] = (short, doc, default)
    for name, short, doc, *_ in flags:
        found[name] = (short, doc, None)
    for attribute, method in inspect.getmembers(Options, inspect.isfunction):
        if attribute.startswith("opt_"):
            found.setdefault(attribute[4:].replace("_", "-"), (None, inspect.getdoc(method) or "", None))
    # Only a parent gives these, to its workers (track/test/run/test_config.py).
    return {name: value for name, value in found.items() if name not in HIDDEN}


class HTTPOptionTests(SynchronousTestCase):
    def test_forms_of_http(self) -> None:
        cases = {
            "8080": "tcp:8080:backlog=1024",
            ":8080": "tcp:8080:backlog=1024",
            "127.0.0.1:9000": "tcp:9000:backlog=1024:interface=127.0.0.1",
            "localhost:9000": "tcp:9000:backlog=1024:interface=localhost",
            "[::1]:9000": r"tcp6:9000:backlog=1024:interface=\:\:1",
            "tcp:8080:interface=127.0.0.1": "tcp:8080:interface=127.0.0.1",
            "unix:/run/track.sock": "unix:/run/track.sock",
            "tcp:8080": "tcp:8080",
        }
        for text, description in cases.items():
            with self.subTest(text=text):
                self.assertEqual(endpoint_description(text), description)
                self.assertEqual(parse("--http", text).config.endpoint, description)

    def test_default_is_port_8080(self) -> None:
        self.assertEqual(parse().config.endpoint, "tcp:8080:backlog=1024")

    def test_bad_http_is_a_usage_error(self) -> None:
        for text in ("bogus:thing", "99999", ":70000", "tcp:notaport", "ssl:19007:privateKey=/nonexistent.pem"):
            with self.subTest(text=text):
                error = self.assertRaises(usage.UsageError, parse, "--http", text)
                self.assertIn("--http", str(error))


class ListenTests(TestCase):
    """What the short --http forms give a listening socket, alone or with workers."""

    def test_short_forms_listen_with_a_deep_accept_queue(self) -> Any:
        endpoint = serverFromString(reactor, endpoint_description("127.0.0.1:0"))
        d = endpoint.listen(Factory.forProtocol(Protocol))

        def check(port: Any) -> Any:
            self.assertEqual(port.backlog, 1024)  # Twisted's own default is 50
            return port.stopListening()

        return d.addCallback(check)

    def test_workers_bind_the_same_descriptions(self) -> None:
        sock = bind(endpoint_description("127.0.0.1:0"))
        self.addCleanup(sock.close)
        self.assertEqual(sock.getsockname()[0], "127.0.0.1")
        for text in ("unix:/tmp/x.sock", "tcp:0:reuseport=1", "systemd:domain=INET:index=0"):
            with self.subTest(text=text):
                self.assertRaises(ValueError, bind, text)


class OtherOptionTests(SynchronousTestCase):
    def test_dsn_forms(self) -> None:
        self.assertEqual(parse("--dsn", "u:p@tcp(h:3306)/db").config.dsn.host, "h")
        self.assertEqual(parse("--dsn", "mysql://u:p@h/db").config.dsn.database, "db")
        self.assertEqual(parse().config.dsn.path, "track.sqlite3")

    def test_malformed_dsn_is_a_usage_error_without_the_password(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--dsn", "mysql://u:hunter2@h:x/db")
        self.assertIn("--dsn", str(error))
        self.assertNotIn("hunter2", str(error))

    def test_log_levels(self) -> None:
        cases = {
            "debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
            "WARNING": LogLevel.warn, "error": LogLevel.error,
            "0": LogLevel.info, "1": LogLevel.debug, "2": LogLevel.debug,
            "-1": LogLevel.warn, "-2": LogLevel.error,
        }
        for text, level in cases.items():
            with self.subTest(text=text):
                self.assertIs(parse("--log-level", text).config.level, level)
        self.assertIs(parse("-v").config.level, LogLevel.debug)
        self.assertIs(parse().config.level, LogLevel.info)
        self.assertRaises(usage.UsageError, parse, "--log-level", "loud")

    def test_batching_knobs(self) -> None:
        options = parse("--batch-size", "50", "--flush-interval", "10", "--max-pending", "7", "--min-batch", "1")
        config = options.config
        self.assertEqual((config.batch_size, config.flush_interval_ms, config.max_pending, config.min_batch),
                         (50, 10.0, 7, 1))
        self.assertEqual(parse().config.min_batch, 32)
        for argv in (("--batch-size", "0"), ("--batch-size", "x"), ("--flush-interval", "-1"),
                     ("--min-batch", "0"), ("--min-batch", "many"),
                     ("--flush-interval", "nan"), ("--max-pending", "1.5")):
            with self.subTest(argv=argv):
                self.assertRaises(usage.UsageError, parse, *argv)

    def test_event_time_window(self) -> None:
        """--max-clock-skew and --max-event-age: seconds, default 10 minutes
        and 30 days, and every --workers child gets them."""
        self.assertEqual((parse().config.max_clock_skew, parse().config.max_event_age), (600.0, 2592000.0))
        options = parse("--max-clock-skew", "30", "--max-event-age", "86400.5")
        self.assertEqual((options.config.max_clock_skew, options.config.max_event_age), (30.0, 86400.5))
        argv = child_argv(options.config, Worker(0, "/tmp/state", 1))
        self.assertIn("--max-clock-skew=30.0", argv)
        self.assertIn("--max-event-age=86400.5", argv)
        for bad in (("--max-clock-skew", "-1"), ("--max-event-age", "x"), ("--max-event-age", "inf")):
            with self.subTest(argv=bad):
                self.assertRaises(usage.UsageError, parse, *bad)

    def test_max_connections(self) -> None:
        self.assertEqual(parse("--max-connections", "100").config.max_connections, 100)
        self.assertIsNone(parse().config.max_connections)  # derived from the descriptor limit at start
        for value in ("0", "-1", "x", "1.5"):
            with self.subTest(value=value):
                self.assertRaises(usage.UsageError, parse, "--max-connections", value)

    def test_trusted_proxies(self) -> None:
        options = parse("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1")
        self.assertEqual([str(n) for n in options.config.trusted_proxies], ["10.0.0.0/8", "::1/128"])
        self.assertRaises(usage.UsageError, parse, "--trusted-proxy", "not-an-ip")

    def test_version_prints_and_exits_zero(self) -> None:
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, parse, "--version")
        self.assertIn(error.code, (0, None))
        self.assertEqual(out.getvalue(), f"track {__version__}\n")

    def test_help_lists_every_option(self) -> None:
        """Every option Options accepts, found from Options itself (its
        parameters, flags and opt_* methods, Twisted's --help included), is
        in --help with its short form, its description and its default."""
        text = str(Options())
        flat = " ".join(text.split())  # descriptions are wrapped over lines
        lines = text.splitlines()
        options = every_option()
        self.assertGreaterEqual(len(options), 21)  # found, not an empty list passing vacuously
        for name, (short, doc, default) in options.items():
            with self.subTest(option=name):
                matching = [line for line in lines if re.match(rf" {{2,6}}(-\w, )?--{re.escape(name)}=?(\s|$)", line)]
                self.assertEqual(len(matching), 1, f"--{name} should start exactly one line of --help")
                (line,) = matching
                if short:
                    self.assertIn(f"-{short}, --{name}", line)
                self.assertTrue(doc, f"--{name} has no description")
                self.assertIn(" ".join(doc.split()), flat)
                if default is not None:
                    self.assertIn(f"{' '.join(doc.split())} [default: {default}]", flat)
        # And nothing in --help that Options does not accept.
        listed = {m.group(1) for m in map(re.compile(r" {2,6}(?:-\w, )?--([a-z][a-z0-9-]*)").match, lines) if m}
        self.assertEqual(listed, set(options))

    def test_every_option_in_help_is_accepted(self) -> None:
        """Each listed option parses (with a value where it takes one)."""
        values = {"http": "tcp:0", "dsn": "sqlite:///tmp/x.sqlite3", "log-level": "warn", "cpuprofile": "/tmp/p",
                  "trusted-proxy": "10.0.0.0/8", "cors-origin": "https://game.example", "spool-dir": "",
                  "flush-interval": "5", "request-timeout": "5", "max-connections": "3",
                  "admin-http": "tcp:0:interface=127.0.0.1", "admin-token": "tok", "admin-host": "admin.example",
                  "anonymize-ip": "2", "anonymize-ipv6": "3"}
        for name, secret in (("dsn-file", "sqlite:///tmp/x.sqlite3"), ("admin-token-file", "token"),
                             ("events", original_text())):
            values[name] = os.path.abspath(self.mktemp())
            with open(values[name], "w") as f:
                f.write(secret)
            os.chmod(values[name], 0o600)
        for name, (_short, _doc, default) in every_option().items():
            if name in ("help", "version"):
                continue  # they print and exit: see test_version_prints_and_exits_zero
            with self.subTest(option=name):
                takes_value = default is not None or name in values
                argv = [f"--{name}", values.get(name, "3")] if takes_value else [f"--{name}"]
                parse(*argv)


class OutageWaitTests(SynchronousTestCase):
    def test_default_and_zero(self) -> None:
        self.assertEqual(parse().config.outage_wait, 2.0)
        self.assertEqual(parse("--outage-wait", "0").config.outage_wait, 0.0)
        self.assertRaises(usage.UsageError, parse, "--outage-wait", "-1")

    def test_a_multi_host_dsn_waits_at_least_its_failover_timeout(self) -> None:
        from track.run.build import outage_wait
        from track.storage.dsn import parse_dsn

        one = parse_dsn("mysql://u@db1:3306/track")
        several = parse_dsn("mysql://u@db1:3306,db2:3306/track?failover_timeout=7")
        self.assertEqual((outage_wait(2.0, one), outage_wait(2.0, several)), (2.0, 7.0))
        self.assertEqual((outage_wait(30.0, several), outage_wait(0.0, several)), (30.0, 0.0))
