"""RFC 3339 date-times with a zone: an event's Timestamp, and a property
declared `"format": "date-time"`.  One grammar for both, so the OpenAPI
pattern, the parser and the error words agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from track.fields.values import Invalid

# Exactly what parse_datetime takes: years 0001 to 9999 (Python's datetime),
# each month's days, February 29 in leap years.
_YEAR = "([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26]|0[48])00)"
_DATE = (f"({_YEAR}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
         f"|02-(0[1-9]|1[0-9]|2[0-8]))|{_LEAP}-02-29)")
RFC3339_BODY = (
    _DATE + r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
FULL_RE = re.compile(RFC3339_BODY)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1)
DATE_TIME_MESSAGE = "must be an RFC 3339 date-time with a zone, like 2026-12-07T15:04:05Z"


def rfc3339_micros(value: str) -> int | None:
    """Microseconds since the epoch (UTC) of an RFC 3339 text; None when it
    is not one.  A fraction finer than a microsecond is cut, as a column
    of microseconds would."""
    m = RFC3339_RE.fullmatch(value)
    if m is None or not FULL_RE.fullmatch(value):
        return None
    year, month, day, hour, minute, second, fraction, sign, zone_h, zone_m = m.groups()
    when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    micros = (when - _EPOCH_UTC) // timedelta(microseconds=1)
    if fraction:
        micros += int((fraction + "00000")[:6])
    if sign:
        offset = (int(zone_h) * 60 + int(zone_m)) * 60_000_000
        micros += -offset if sign == "+" else offset
    return micros


def parse_datetime(value: object) -> datetime:
    """A date-time property: naive UTC, to the microsecond (a DATETIME(6))."""
    if type(value) is not str or not value.isascii():
        raise Invalid(DATE_TIME_MESSAGE)
    micros = rfc3339_micros(value)
    if micros is None:
        raise Invalid(DATE_TIME_MESSAGE)
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:  # 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        raise Invalid(DATE_TIME_MESSAGE) from None
