"""Event time: when an event happened, by the client's clock, turned into
the `Created` the server stores.

A client may stamp each event (`Timestamp`) and each request (`SentAt`,
when it was sent).  Their difference is how long the event waited on the
client, which does not depend on the client's clock being right; so
Created = receive time - (SentAt - Timestamp).  Without SentAt, Created is
the Timestamp itself; without Timestamp, the receive time, as ever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from track.fields.kinds import InvalidEvent, Kind, parse_event
from track.fields.rfc3339 import RFC3339_BODY as RFC3339_BODY
from track.fields.rfc3339 import rfc3339_micros
from track.fields.values import Invalid

TIMESTAMP = "Timestamp"
SENT_AT = "SentAt"
SENT_AT_HEADER = b"Track-Sent-At"
DEFAULT_MAX_CLOCK_SKEW = 600.0  # seconds
DEFAULT_MAX_EVENT_AGE = 30 * 24 * 3600.0  # seconds

EPOCH_MS_DIGITS = 16  # ~317,000 years: far past any window, and cheap to parse
EPOCH_MS_BODY = f"[0-9]{{1,{EPOCH_MS_DIGITS}}}"
_EPOCH_MS_RE = re.compile(EPOCH_MS_BODY)
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FORMS = "RFC 3339 with a zone (2026-12-07T15:04:05Z) or epoch milliseconds"


def parse_time(value: object) -> int:
    """A Timestamp or SentAt as microseconds since the epoch (UTC)."""
    if type(value) is int:  # not bool
        if not 0 <= value < 10**EPOCH_MS_DIGITS:
            raise Invalid(f"must be {_FORMS}: {EPOCH_MS_DIGITS} digits at most")
        return value * 1000
    if type(value) is not str or not value.isascii():
        raise Invalid(f"must be {_FORMS}")
    if _EPOCH_MS_RE.fullmatch(value):
        return int(value) * 1000
    micros = rfc3339_micros(value)
    if micros is None:
        raise Invalid(f"must be {_FORMS}")
    return micros


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


@dataclass(frozen=True)
class EventTime:
    """How far from the receive time an event's time may be."""

    max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW
    max_event_age: float = DEFAULT_MAX_EVENT_AGE
    # The last Created made from an epoch-ms Timestamp: (stamp, sent_at, now,
    # Created), one tuple replaced whole.  The events of a client's batch
    # mostly share their millisecond with the one before.
    _last: list[tuple[int, int | None, datetime, datetime] | None] = field(
        default_factory=lambda: [None], init=False, repr=False, compare=False)

    def created(self, stamp: object, sent_at: int | None, now: datetime) -> datetime:
        """The Created of an event stamped `stamp` (a Timestamp value, not
        yet parsed), in a request sent at `sent_at` (parsed) and received
        `now` (naive UTC).  Invalid names what is wrong with the Timestamp."""
        if type(stamp) is not int:
            return self._created(parse_time(stamp), sent_at, now)
        last = self._last[0]
        # `now is`: one request's events share its receive time, the object itself.
        if last is not None and last[0] == stamp and last[2] is now and last[1] == sent_at:
            return last[3]
        created = self._created(parse_time(stamp), sent_at, now)
        self._last[0] = (stamp, sent_at, now, created)
        return created

    def _created(self, stamp_us: int, sent_at: int | None, now: datetime) -> datetime:
        now_us = (now - _EPOCH) // _MICROSECOND
        # How long ago it happened, checked as an integer first: a far-off
        # value cannot overflow a datetime.
        age_us = now_us - stamp_us if sent_at is None else sent_at - stamp_us
        if age_us < -self.max_clock_skew * 1e6:
            raise Invalid(f"is more than {_seconds(self.max_clock_skew)} seconds in the future (--max-clock-skew)")
        if age_us > self.max_event_age * 1e6:
            raise Invalid(f"is older than {_seconds(self.max_event_age)} seconds (--max-event-age)")
        try:
            if sent_at is None:
                return _EPOCH + timedelta(microseconds=stamp_us)
            return now - timedelta(microseconds=age_us)
        except OverflowError:  # past year 9999 or before year 1, with a window that wide
            raise Invalid("is out of range (years 1 to 9999)") from None

    def parse(self, kind: Kind, data: dict[str, object], remote_ip: str, now: datetime,
              sent_at: int | None) -> tuple[Any, ...]:
        """parse_event for an event that may carry a Timestamp (taken out of
        `data`): every bad field named at once, the Timestamp's too."""
        if TIMESTAMP not in data:
            return parse_event(kind, data, remote_ip, now)
        stamp = data.pop(TIMESTAMP)
        problem = None
        created = now
        if stamp is None:
            problem = "must not be null"
        elif not (stamp == "" and type(stamp) is str):  # an empty form value: not given
            try:
                created = self.created(stamp, sent_at, now)
            except Invalid as e:
                problem = str(e)
        try:
            row = parse_event(kind, data, remote_ip, created)
        except InvalidEvent as e:
            if problem is not None:
                e.fields[TIMESTAMP] = problem
            raise
        if problem is not None:
            raise InvalidEvent({TIMESTAMP: problem})
        return row


def sent_at_of(value: object) -> int | None:
    """A request's SentAt (header bytes, or the batch body's value), parsed;
    None when not given.  InvalidEvent naming SentAt when unusable."""
    if value is None or value == b"" or value == "":
        return None
    try:
        if isinstance(value, bytes):
            return parse_time(value.decode("latin-1"))
        return parse_time(value)
    except Invalid as e:
        raise InvalidEvent({SENT_AT: str(e)}) from None


def batch_sent_at(header: bytes | None, envelope: dict[str, object]) -> int | None:
    """A batch's SentAt: the header's, or the JSON body's (a sendBeacon sets
    no headers), never both."""
    if SENT_AT not in envelope:
        return sent_at_of(header)
    if header is not None:
        raise InvalidEvent({SENT_AT: "given both as the Track-Sent-At header and in the body"})
    if envelope[SENT_AT] is None:
        raise InvalidEvent({SENT_AT: "must not be null"})
    return sent_at_of(envelope[SENT_AT])
