"""Log levels for track's own messages (`--log-level`, `-v`), and JSON logs.

twistd owns the log observers (`--logfile`, `--logger`); track only decides
which of its own events are worth emitting.  Every track Logger publishes
through one `FilteringLogObserver` whose `LogLevelFilterPredicate` holds the
level, in front of the global log publisher: what passes reaches twistd's
observers as before, and events from Twisted and other libraries never go
through the filter, so `--log-level` quiets track alone.

What can happen once per connection (a timed-out client, a refused accept, a
reconnect) is never logged once per event: `Summaries` counts it and logs
one line per kind per interval, and `dropping` keeps a library's own
per-connection lines out of the log.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    globalLogPublisher,
)
from twisted.logger import Logger as _TwistedLogger

_NAMES: dict[str, LogLevel] = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
}
# The original's numeric -log levels: 0 (its default) is info, higher is
# more verbose, negative is quieter (1 and more are debug, -2 and less error).
_NUMERIC: dict[int, LogLevel] = {-2: LogLevel.error, -1: LogLevel.warn, 0: LogLevel.info, 1: LogLevel.debug}

# The level of every track event, whatever its namespace: only track's
# Loggers publish through this observer.
_levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_filtered = FilteringLogObserver(globalLogPublisher, [_levels])


def parse_level(text: str) -> LogLevel:
    """A level name or the original's number; ValueError says what is accepted."""
    name = text.strip().lower()
    if name in _NAMES:
        return _NAMES[name]
    if name.lstrip("-").isdigit() and name.isascii():
        return _NUMERIC[max(-2, min(int(name), 1))]
    raise ValueError(
        f"unknown log level {text!r}: use debug, info, warn or error "
        "(or the original's numbers: 0 info, 1 debug, -1 warn, -2 error)"
    )


def set_level(level: LogLevel) -> None:
    """Emit track's events of `level` and above, drop the rest."""
    _levels.setLogLevelForNamespace("", level)


def enabled(level: LogLevel) -> bool:
    """Whether track's events of `level` are emitted."""
    return bool(level >= _levels.logLevelForNamespace(""))


class Logger(_TwistedLogger):
    """A twisted.logger.Logger whose events below the `--log-level` are
    dropped before they reach any observer.  track names each logger's
    namespace (`Logger(namespace="track.service")`)."""

    def __init__(self, namespace: str, source: object | None = None,
                 observer: ILogObserver | None = None) -> None:
        super().__init__(namespace, source, _filtered if observer is None else observer)


def json_stdout() -> ILogObserver:
    """For `twistd --logger track.logs.json_stdout`: every log event as one
    JSON object per line on stdout (Twisted's JSON log observer), for log
    shippers that want structure rather than text."""
    import sys

    from twisted.logger import jsonFileLogObserver

    return jsonFileLogObserver(sys.stdout)


SUMMARY_SECONDS = 10.0


class Summaries:
    """Expected, repetitive events (timed-out connections, refused accepts,
    database reconnects) logged as one line per kind per interval instead of
    one per event: a log an attacker can fill is an outage of its own.

    `add("timed out {n} idle connections")` counts one; the first count of
    an interval schedules the summary, which logs each kind once with its
    total `n`.  Nothing is scheduled while nothing happens.  Call it on the
    reactor thread."""

    def __init__(self, logger: _TwistedLogger, clock: IReactorTime, interval: float = SUMMARY_SECONDS) -> None:
        self.log = logger
        self.clock = clock
        self.interval = interval
        self._counts: dict[str, tuple[int, LogLevel]] = {}
        self._pending: IDelayedCall | None = None

    def add(self, what: str, n: int = 1, level: LogLevel = LogLevel.info) -> None:
        """Count `n` events of the kind `what` (a format naming `{n}`)."""
        count, _ = self._counts.get(what, (0, level))
        self._counts[what] = (count + n, level)
        if self._pending is None:
            self._pending = self.clock.callLater(self.interval, self.flush)

    def flush(self) -> None:
        """Log what was counted since the last summary, one line per kind."""
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        counts, self._counts = self._counts, {}
        for what, (n, level) in counts.items():
            self.log.emit(level, what, n=n)

    def stop(self) -> None:
        """Log what is left now, and schedule nothing more."""
        self.flush()


def dropping(formats: frozenset[str]) -> ILogObserver:
    """An observer for a library's Logger that forwards its events to the
    global publisher, except those whose format is one of `formats`: the
    per-connection lines track counts and summarizes instead."""

    def keep(event: dict[str, Any]) -> PredicateResult:
        drop = event.get("log_format") in formats
        result: PredicateResult = PredicateResult.no if drop else PredicateResult.maybe
        return result

    return FilteringLogObserver(globalLogPublisher, [cast(ILogFilterPredicate, keep)])
