"""Log levels for track's own messages (`--log-level`, `-v`), and JSON logs.

twistd owns the log observers (`--logfile`, `--logger`); track only decides
which of its own events are worth emitting.  Every track Logger publishes
through one `FilteringLogObserver` whose `LogLevelFilterPredicate` holds the
level, in front of the global log publisher: what passes reaches twistd's
observers as before, and events from Twisted and other libraries never go
through the filter, so `--log-level` quiets track alone.
"""

from __future__ import annotations

from twisted.logger import FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate, globalLogPublisher
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
