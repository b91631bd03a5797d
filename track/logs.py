"""Log levels for track's own messages (`--log-level`, `-v`).

twistd owns the log observers (`--logfile`, `--logger`); track only decides
which of its own events are worth emitting, so filtering costs one
comparison and never touches the observers.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger as _TwistedLogger
from twisted.logger import LogLevel

_PRIORITY = {
    LogLevel.debug: 0,
    LogLevel.info: 1,
    LogLevel.warn: 2,
    LogLevel.error: 3,
    LogLevel.critical: 4,
}
_NAMES = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
}
# The original's numeric -log levels: 0 (its default) is info, higher is
# more verbose, negative is quieter.
_NUMERIC = {-2: LogLevel.error, -1: LogLevel.warn, 0: LogLevel.info}

_threshold = _PRIORITY[LogLevel.info]


def parse_level(text: str) -> LogLevel:
    """A level name or the original's number; ValueError says what is accepted."""
    name = text.strip().lower()
    if name in _NAMES:
        return _NAMES[name]
    if name.lstrip("-").isdigit() and name.isascii():
        number = int(name)
        return LogLevel.debug if number > 0 else _NUMERIC.get(number, LogLevel.error)
    raise ValueError(
        f"unknown log level {text!r}: use debug, info, warn or error "
        "(or the original's numbers: 0 info, 1 debug, -1 warn, -2 error)"
    )


def set_level(level: LogLevel) -> None:
    global _threshold
    _threshold = _PRIORITY[level]


def enabled(level: LogLevel) -> bool:
    return _PRIORITY[level] >= _threshold


class Logger(_TwistedLogger):
    """A twisted.logger.Logger that drops events below the configured level."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        if _PRIORITY[level] >= _threshold:
            super().emit(level, format, **kwargs)


def json_stdout() -> Any:
    """For `twistd --logger track.logs.json_stdout`: every log event as one
    JSON object per line on stdout (Twisted's JSON log observer), for log
    shippers that want structure rather than text."""
    import sys

    from twisted.logger import jsonFileLogObserver

    return jsonFileLogObserver(sys.stdout)
