"""Event kinds as field tables, and the parser that checks an event.

One table per kind drives everything that must agree: which fields a client
may send, how each is parsed, which columns an INSERT names, and the
OpenAPI document.  A value is either parsed exactly or reported back to the
client; nothing is coerced, truncated or guessed.  The tables are compiled
from declarations (track.fields.compile): each field's parser is built once,
there, never per event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from track.fields.checks import Parser, decimal_parser, enum_parser, int_parser, pattern_parser, saying
from track.fields.messageid import new_message_id
from track.fields.rfc3339 import parse_datetime
from track.fields.values import (
    INT32_MAX,
    INT32_MIN,
    MESSAGE_ID_MAX,
    MONEY_PLACES,
    Invalid,
    parse_bool,
    parse_message_id,
    parse_region,
    parse_string,
)

# Field types: "string" (plain text, the column's length), "int", "bool",
# "money" (a decimal number: DECIMAL(19, scale); the original's money at
# scale 4), "region" (the original's Region: 2 to 16 letters), "messageid",
# "enum", "pattern" (text a regex must match), "datetime" (RFC 3339, kept
# as naive UTC).  Only "string" stores an empty form value as ""; for every
# other type "" means "not given", as the original read its forms.
TYPES = ("string", "int", "bool", "money", "region", "messageid", "enum", "pattern", "datetime")


class InvalidEvent(ValueError):
    """An event with one or more bad fields, mapped field name -> message."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__(dict(fields))
        self.fields = dict(fields)


@dataclass(frozen=True)
class Constant:
    """A default value: equal to another of the same value (a lambda is not)."""

    value: Any

    def __call__(self) -> Any:
        return self.value


@dataclass(frozen=True)
class Field:
    """A client-supplied field: its column name, type and rules.  `check`,
    its parser, is built from them once, when the field is made."""

    name: str
    type: str  # one of TYPES
    required: bool
    max_length: int = 0  # "string", "pattern": the most characters taken
    bmp_only: bool = False  # "string": the column is 3-byte utf8
    default: Callable[[], Any] | None = None  # fills the column when not given
    low: int | Decimal | None = None  # "int": the range (None: 32-bit); "money": declared bounds
    high: int | Decimal | None = None
    scale: int = MONEY_PLACES  # "money": digits after the decimal point
    enum: tuple[str, ...] | None = None  # "enum": the values taken
    pattern: str | None = None  # "pattern": an ECMA-262 regex, unanchored
    message: str | None = None  # x-track-message: what every refusal of a value says
    description: str | None = None  # for the OpenAPI document
    check: Parser = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", _parser(self))

    @property
    def int_range(self) -> tuple[int, int]:
        low = INT32_MIN if self.low is None else int(self.low)
        return low, INT32_MAX if self.high is None else int(self.high)

    def parse(self, value: object) -> Any:
        return self.check(value)


def _parser(f: Field) -> Parser:
    parse: Parser
    if f.type == "string":
        length, bmp_only = f.max_length, f.bmp_only

        def parse_text(value: object) -> str:
            return parse_string(value, length, bmp_only)

        parse = parse_text
    elif f.type == "int":
        parse = int_parser(*f.int_range)
    elif f.type == "money":
        parse = decimal_parser(f.scale, f.low, f.high)
    elif f.type == "enum":
        assert f.enum, f"enum field {f.name} without values"
        parse = enum_parser(f.enum)
    elif f.type == "pattern":
        assert f.pattern is not None, f"pattern field {f.name} without a pattern"
        parse = pattern_parser(f.pattern, f.max_length)
    else:
        parse = _FIXED[f.type]
    return saying(parse, f.message) if f.message else parse


_FIXED: dict[str, Parser] = {
    "messageid": parse_message_id,
    "bool": parse_bool,
    "region": parse_region,
    "datetime": parse_datetime,
}


# Idempotency key, in every kind: a retry with the same MessageID stores
# nothing new.  The server assigns a UUID when the client sends none.
MESSAGE_ID = Field("MessageID", "messageid", False, MESSAGE_ID_MAX, default=new_message_id)


@dataclass(frozen=True)
class Kind:
    """One endpoint: its table, client fields and server-filled columns."""

    name: str
    table: str
    fields: tuple[Field, ...]
    remote_ip_column: bool  # RemoteIP filled from the connection
    description: str | None = None  # for the OpenAPI document

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """INSERT column order; parse_event returns values in this order."""
        server = ("RemoteIP", "Created") if self.remote_ip_column else ("Created",)
        return tuple(f.name for f in self.fields) + server

    def with_string_limits(self, limits: Mapping[str, Sequence[Any]]) -> Kind:
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


def parse_event(
    kind: Kind, data: Mapping[str, object], remote_ip: str, created: datetime
) -> tuple[Any, ...]:
    """Check every field of one event; return its row in `event.columns` order.

    Raises InvalidEvent naming every bad, missing or unknown field at once, so
    a client fixes its request in one round trip.
    """
    errors: dict[str, str] = {}
    row: list[Any] = []
    present = 0
    for f in kind.fields:
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
                row.append(f.check(value))
            except Invalid as e:
                errors[f.name] = str(e)
    if present != len(data):
        known = {f.name for f in kind.fields}
        errors.update((name, "unknown field") for name in data if name not in known)
    if errors:
        raise InvalidEvent(errors)
    if kind.remote_ip_column:
        row.append(remote_ip)
    row.append(created)
    return tuple(row)
