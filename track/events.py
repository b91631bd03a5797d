"""The four event kinds as field tables, and the parser that checks them.

One table per kind drives everything that must agree: which fields a client
may send, how each is parsed, which columns an INSERT names, and (later) the
OpenAPI document.  A value is either parsed exactly or reported back to the
client; nothing is coerced, truncated or guessed.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import uuid
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MONEY_PLACES = 4
MONEY_MAX_INTEGER_DIGITS = 15  # DECIMAL(19,4)
_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)

_INT_RE = re.compile(r"-?[0-9]+")
_MONEY_RE = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")
_REGION_RE = re.compile(r"[A-Za-z]{2,16}")
_MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MESSAGE_ID_MAX = 64
_ASTRAL_RE = re.compile("[\U00010000-\U0010FFFF]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Go's strconv.ParseBool, which the original used.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class JSONNumber(str):
    """The source text of a JSON number with a fraction or exponent.

    The JSON decoder hands these over unparsed so that money keeps its exact
    digits and an int field can tell 1.0 from 1.
    """


class Invalid(ValueError):
    """One field's value is unusable; the message is shown to the client."""


class InvalidEvent(ValueError):
    """An event with one or more bad fields, mapped field name -> message."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__(dict(fields))
        self.fields = dict(fields)


def _is_int(value: object) -> bool:
    return type(value) is int


def parse_string(value: object, max_length: int, bmp_only: bool = False) -> str:
    if type(value) is not str:
        raise Invalid("must be a string")
    if len(value) > max_length:
        raise Invalid(f"must be at most {max_length} characters")
    if value.isascii():  # the common case: no surrogates, nothing past the BMP
        return value
    if _SURROGATE_RE.search(value):
        raise Invalid("is not valid Unicode (it contains an unpaired surrogate)")
    if bmp_only and _ASTRAL_RE.search(value):
        raise Invalid(
            "contains characters outside the Basic Multilingual Plane (such as emoji), "
            "which this database column (3-byte utf8) cannot store"
        )
    return value


def parse_int(value: object, low: int = INT32_MIN, high: int = INT32_MAX) -> int:
    if _is_int(value):
        number = value
    elif type(value) is str and value.isascii() and _INT_RE.fullmatch(value):
        digits = value.lstrip("-").lstrip("0") or "0"
        if len(digits) > 20:  # far out of range, and int() refuses 4300+ digits
            raise Invalid(f"must be an integer between {low} and {high}")
        number = -int(digits) if value[0] == "-" else int(digits)
    else:
        raise Invalid("must be an integer")
    if not low <= number <= high:  # type: ignore[operator]
        raise Invalid(f"must be an integer between {low} and {high}")
    return number  # type: ignore[return-value]


def parse_bool(value: object) -> bool:
    if value is True or value is False:
        return value
    if _is_int(value) and value in (0, 1):
        return bool(value)
    if type(value) is str:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise Invalid("must be a boolean: true or false (also 1, 0, t, f, TRUE, FALSE)")


def parse_money(value: object) -> Decimal:
    if _is_int(value):
        text = str(value)
    elif isinstance(value, str) and value.isascii():
        text = value
    else:
        raise Invalid("must be a decimal number")
    m = _MONEY_RE.fullmatch(text)
    if not m:
        raise Invalid("must be a decimal number like 12 or 12.3456")
    whole, fraction = m.group(1), m.group(2) or ""
    if len(fraction) > MONEY_PLACES:
        raise Invalid(f"must have at most {MONEY_PLACES} digits after the decimal point")
    if len(whole.lstrip("0")) > MONEY_MAX_INTEGER_DIGITS:
        raise Invalid(f"must have at most {MONEY_MAX_INTEGER_DIGITS} digits before the decimal point")
    return Decimal(text).quantize(_QUANTUM)


def parse_region(value: object) -> str:
    if type(value) is not str or not value.isascii() or not _REGION_RE.fullmatch(value):
        raise Invalid("must be 2 to 16 letters A-Z or a-z")
    return value


def parse_message_id(value: object) -> str:
    if type(value) is not str or not value.isascii() or not _MESSAGE_ID_RE.fullmatch(value):
        raise Invalid(f"must be 1 to {MESSAGE_ID_MAX} characters from A-Z a-z 0-9 . _ : -")
    return value


_id_prefix = ""
_id_counter = itertools.count()


def _new_id_prefix() -> None:
    """74 fresh random bits: at import, and in every forked child, so that
    two processes never share a prefix."""
    global _id_prefix
    _id_prefix = str(uuid.uuid4())[:24]


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)


def new_message_id() -> str:
    """A version-4-format UUID: 74 random bits drawn once per process, then a
    counter.  Unique like uuid4() and far cheaper (no urandom, and no getpid,
    per event)."""
    return f"{_id_prefix}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


@dataclass(frozen=True)
class Field:
    """A client-supplied field: its column name, type and limits."""

    name: str
    type: str  # "string" | "int" | "bool" | "money" | "region"
    required: bool
    max_length: int = 0  # strings only: the column's length in characters
    bmp_only: bool = False  # strings only: the column is 3-byte utf8
    default: Callable[[], Any] | None = None  # fills the column when not given

    def parse(self, value: object) -> Any:
        if self.type == "string":
            return parse_string(value, self.max_length, self.bmp_only)
        return _PARSERS[self.type](value)


_PARSERS: dict[str, Callable[[object], Any]] = {
    "messageid": parse_message_id,
    "int": parse_int,
    "bool": parse_bool,
    "money": parse_money,
    "region": parse_region,
}


def _string(name: str, length: int, required: bool = True) -> Field:
    return Field(name, "string", required, length)


REGION = Field("Region", "region", True)
# Idempotency key: a retry with the same MessageID stores nothing new.  The
# server assigns a UUID when the client sends none.
MESSAGE_ID = Field("MessageID", "messageid", False, MESSAGE_ID_MAX, default=new_message_id)


@dataclass(frozen=True)
class EventType:
    """One endpoint: its table, client fields and server-filled columns."""

    name: str
    table: str
    fields: tuple[Field, ...]
    remote_ip_column: bool  # RemoteIP filled from the connection

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """INSERT column order; parse_event returns values in this order."""
        server = ("RemoteIP", "Created") if self.remote_ip_column else ("Created",)
        return tuple(f.name for f in self.fields) + server

    def with_string_limits(self, limits: Mapping[str, Sequence[Any]]) -> "EventType":
        """This event with string fields limited as `limits` says:
        column name -> (length in characters, bmp_only)."""
        fields = tuple(
            dataclasses.replace(f, max_length=limits[f.name][0], bmp_only=bool(limits[f.name][1]))
            if f.type == "string" and f.name in limits
            else f
            for f in self.fields
        )
        return dataclasses.replace(self, fields=fields)

    @cached_property
    def message_id_index(self) -> int:
        """Where a row holds its MessageID."""
        return self.columns.index("MessageID")


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType(
            "session",
            "SessionEvent",
            (
                REGION,
                _string("SessionID", 32),
                _string("RemoteIP", 45),
                _string("SessionType", 32),
                _string("Message", 45, required=False),
                Field("ProfileID", "int", False),
                MESSAGE_ID,
            ),
            remote_ip_column=False,
        ),
        EventType(
            "user",
            "UserEvent",
            (
                Field("ProfileID", "int", True),
                REGION,
                _string("Referrer", 64, required=False),
                _string("Message", 45, required=False),
                MESSAGE_ID,
            ),
            remote_ip_column=True,
        ),
        EventType(
            "item",
            "ItemEvent",
            (
                Field("ProfileID", "int", True),
                REGION,
                _string("ItemName", 64),
                _string("ItemType", 45),
                Field("IsUGC", "bool", True),
                Field("PriceGold", "int", False),
                Field("PriceSilver", "int", False),
                MESSAGE_ID,
            ),
            remote_ip_column=True,
        ),
        EventType(
            "purchase",
            "PurchaseEvent",
            (
                Field("ProfileID", "int", True),
                REGION,
                _string("Currency", 3),
                Field("GrossAmount", "money", True),
                Field("NetAmount", "money", True),
                _string("PaymentProvider", 45),
                _string("Product", 45),
                MESSAGE_ID,
            ),
            remote_ip_column=False,
        ),
    )
}


def parse_event(
    event: EventType, data: Mapping[str, object], remote_ip: str, created: datetime
) -> tuple[Any, ...]:
    """Check every field of one event; return its row in `event.columns` order.

    Raises InvalidEvent naming every bad, missing or unknown field at once, so
    a client fixes its request in one round trip.
    """
    errors: dict[str, str] = {}
    row: list[Any] = []
    present = 0
    for f in event.fields:
        if f.name not in data:
            if f.required:
                errors[f.name] = "is required"
            row.append(f.default() if f.default else None)
            continue
        present += 1
        value = data[f.name]
        if value is None:
            errors[f.name] = "must not be null"
        elif value == "" and type(value) is str and (f.required or f.type != "string"):
            # An empty form value means "not given", as in the original.
            if f.required:
                errors[f.name] = "is required"
            row.append(f.default() if f.default else None)
        elif f.type == "string" and type(value) is str and value.isascii() and len(value) <= f.max_length:
            row.append(value)  # what parse_string would return, without the call
        else:
            try:
                row.append(f.parse(value))
            except Invalid as e:
                errors[f.name] = str(e)
    if present != len(data):
        known = {f.name for f in event.fields}
        errors.update((name, "unknown field") for name in data if name not in known)
    if errors:
        raise InvalidEvent(errors)
    if event.remote_ip_column:
        row.append(remote_ip)
    row.append(created)
    return tuple(row)
