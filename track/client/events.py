"""One event as the line the batch endpoint reads: values made JSON, its
MessageID kept or made, its Timestamp stamped."""

from __future__ import annotations

import itertools
import json
import math
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal


class JSONNumber(str):
    """The source text of a JSON number with a fraction or exponent
    (`json.loads(text, parse_float=JSONNumber)`): money keeps its digits, and
    an int field can tell 1.0 from 1, as the collector does."""


class InvalidEventError(ValueError):
    """`track()` was given a bad event; `.fields` maps each bad field to why."""

    def __init__(self, kind: object, fields: Mapping[str, str]) -> None:
        super().__init__(dict(fields))
        self.kind = kind
        self.fields = dict(fields)

    def __reduce__(self) -> tuple[type[InvalidEventError], tuple[object, dict[str, str]]]:
        return InvalidEventError, (self.kind, self.fields)  # pickled into a multiprocessing parent

    def __str__(self) -> str:
        return f"invalid {self.kind} event: " + "; ".join(f"{k}: {v}" for k, v in self.fields.items())


class _IDs:
    """New MessageIDs: a random UUID for the process (made again in a forked
    child), and a counter: unique as a UUID each, at a fraction of the cost."""

    def __init__(self) -> None:
        self.prefix = ""  # made on first use: no work at import
        self.count = itertools.count(1)

    def renew(self) -> None:
        self.prefix = ""
        self.count = itertools.count(1)

    def next(self) -> str:
        if not self.prefix:
            self.prefix = uuid.uuid4().hex
        return f"{self.prefix}-{next(self.count):x}"


_ids = _IDs()
new_message_id = _ids.next
renew_message_ids = _ids.renew


def now_ms() -> int:
    """Epoch milliseconds: the form of Timestamp and SentAt the client sends."""
    return time.time_ns() // 1_000_000


def wire_value(value: object) -> tuple[object, object]:
    """(what goes on the wire, what the collector will read from it)."""
    if type(value) is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid Unicode (it contains an unpaired surrogate)") from None
        return value, value
    if value is None or isinstance(value, bool | int):
        return value, value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        text = json.dumps(value)
        return value, JSONNumber(text)  # 1.0 too: the collector reads it as a number, not an int
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        text = format(value, "f")
        return text, text
    if isinstance(value, JSONNumber | str):  # sent as its text (a JSON string), which the collector parses
        return str(value), str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime needs a time zone")
        return value.isoformat(), value.isoformat()
    raise ValueError(f"cannot be sent as JSON (a {type(value).__name__})")


def prepare(kind: object, fields: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object], dict[str, str]]:
    """(wire values, values as the collector reads them, errors) for an
    event; a MessageID is added when it has none."""
    untyped: object = fields  # callers may not be type-checked
    if not isinstance(untyped, Mapping):
        raise TypeError(f"fields must be a mapping, not {type(fields).__name__}")
    errors: dict[str, str] = {}
    wire: dict[str, object] = {}
    seen: dict[str, object] | None = None  # the same as wire, until a value reads otherwise
    for name, value in untyped.items():
        kind_of = type(value)
        if (kind_of is int or (kind_of is str and value.isascii())) and type(name) is str:
            wire[name] = value  # the common case: read as sent
            if seen is not None:
                seen[name] = value
            continue
        if not isinstance(name, str):
            errors[repr(name)] = "field names must be strings"
            continue
        try:
            sent, read = wire_value(value)
        except ValueError as e:
            errors[name] = str(e)
            continue
        wire[name] = sent
        if seen is None and read is not sent:
            seen = dict(wire)
        if seen is not None:
            seen[name] = read
    if seen is None:
        seen = wire
    if wire.get("MessageID") in (None, ""):
        # The collector makes up a new MessageID for a missing or empty one on
        # every send, so a resend would be stored again: one of ours, kept.
        wire["MessageID"] = seen["MessageID"] = new_message_id()
    return wire, seen, errors


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def line(kind: str, wire: Mapping[str, object]) -> str:
    """The NDJSON line: {"type": kind, ...fields}."""
    text = _encoder.encode(wire)
    return f'{{"type":"{kind}",{text[1:]}' if len(text) > 2 else f'{{"type":"{kind}"}}'
