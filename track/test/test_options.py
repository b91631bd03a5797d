"""`twistd track` options: --http forms, --dsn, log levels, knobs, --version."""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track import __version__
from track.listen import endpoint_description
from track.tap import Options
from track.workers import bind


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


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
                self.assertEqual(parse("--http", text)["endpoint"], description)

    def test_default_is_port_8080(self) -> None:
        self.assertEqual(parse()["endpoint"], "tcp:8080:backlog=1024")

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
        self.assertEqual(parse("--dsn", "u:p@tcp(h:3306)/db")["parsed-dsn"].host, "h")
        self.assertEqual(parse("--dsn", "mysql://u:p@h/db")["parsed-dsn"].database, "db")
        self.assertEqual(parse()["parsed-dsn"].path, "track.sqlite3")

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
                self.assertIs(parse("--log-level", text)["level"], level)
        self.assertIs(parse("-v")["level"], LogLevel.debug)
        self.assertIs(parse()["level"], LogLevel.info)
        self.assertRaises(usage.UsageError, parse, "--log-level", "loud")

    def test_batching_knobs(self) -> None:
        options = parse("--batch-size", "50", "--flush-interval", "10", "--max-pending", "7", "--min-batch", "1")
        self.assertEqual((options["batch-size"], options["flush-interval"], options["max-pending"],
                          options["min-batch"]), (50, 10.0, 7, 1))
        self.assertEqual(parse()["min-batch"], 32)
        for argv in (("--batch-size", "0"), ("--batch-size", "x"), ("--flush-interval", "-1"),
                     ("--min-batch", "0"), ("--min-batch", "many"),
                     ("--flush-interval", "nan"), ("--max-pending", "1.5")):
            with self.subTest(argv=argv):
                self.assertRaises(usage.UsageError, parse, *argv)

    def test_trusted_proxies(self) -> None:
        options = parse("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1")
        self.assertEqual([str(n) for n in options["proxies"]], ["10.0.0.0/8", "::1/128"])
        self.assertRaises(usage.UsageError, parse, "--trusted-proxy", "not-an-ip")

    def test_version_prints_and_exits_zero(self) -> None:
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, parse, "--version")
        self.assertIn(error.code, (0, None))
        self.assertEqual(out.getvalue(), f"track {__version__}\n")

    def test_help_lists_every_option(self) -> None:
        text = str(Options())
        for name in ("--http", "--dsn", "--log-level", "--verbose", "--version", "--cpuprofile",
                     "--batch-size", "--min-batch", "--flush-interval", "--max-pending", "--help"):
            self.assertIn(name, text)
