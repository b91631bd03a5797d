"""`--log-level` and `-v` through Twisted's LogLevelFilterPredicate: they
quiet track's own events only, and `--logger track.logs.json_stdout` writes
each event as one JSON line."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, cast

from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.logger import Logger as TwistedLogger
from twisted.trial.unittest import SynchronousTestCase

from track import logs
from track.run.options import Options


def level_of(*argv: str) -> Any:
    options = Options()
    options.parseOptions(list(argv))
    return options.config.level


class LogLevelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.seen: list[tuple[str, str]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace", "").startswith(("track.test", "twisted.test")):
                self.seen.append((event["log_namespace"], event["log_level"].name))

        observer = cast(ILogObserver, observe)  # as twisted.logger.capturedLogs does
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.addCleanup(logs.set_level, LogLevel.info)  # the default, for the tests after this one

    def emit_each_level(self) -> None:
        track, other = logs.Logger(namespace="track.test"), TwistedLogger(namespace="twisted.test")
        for logger in (track, other):
            logger.debug("d")
            logger.info("i")
            logger.warn("w")
            logger.error("e")

    def test_a_level_drops_what_is_below_it_of_track_and_nothing_else(self) -> None:
        everything = [("twisted.test", level) for level in ("debug", "info", "warn", "error")]
        cases = {
            ("--log-level", "warn"): ["warn", "error"],
            ("--log-level", "-1"): ["warn", "error"],
            ("--log-level", "-2"): ["error"],
            ("--log-level", "error"): ["error"],
            (): ["info", "warn", "error"],
            ("--log-level", "0"): ["info", "warn", "error"],
            ("-v",): ["debug", "info", "warn", "error"],
            ("--log-level", "1"): ["debug", "info", "warn", "error"],
        }
        for argv, shown in cases.items():
            with self.subTest(argv=argv):
                del self.seen[:]
                logs.set_level(level_of(*argv))
                self.emit_each_level()
                self.assertEqual(self.seen, [("track.test", level) for level in shown] + everything)
                self.assertEqual([logs.enabled(getattr(LogLevel, n)) for n in ("debug", "info", "warn", "error")],
                                 [n in shown for n in ("debug", "info", "warn", "error")])

    def test_json_stdout_writes_one_json_object_per_event(self) -> None:
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        observer = logs.json_stdout()
        TwistedLogger(namespace="track.test", observer=observer).warn("stored {n}", n=3)
        (line,) = out.getvalue().strip("\n").split("\n")
        event = json.loads(line.lstrip("\x1e"))
        self.assertEqual((event["log_namespace"], event["log_level"]["name"], event["n"]),
                         ("track.test", "warn", 3))
