"""The four event kinds as field tables, and the parser that checks them.

One table per kind drives everything that must agree: which fields a client
may send, how each is parsed, which columns an INSERT names, and the
OpenAPI document.  A value is either parsed exactly or reported back to the
client; nothing is coerced, truncated or guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from track.fields.messageid import new_message_id
from track.fields.values import (
    MESSAGE_ID_MAX,
    Invalid,
    parse_bool,
    parse_int,
    parse_message_id,
    parse_money,
    parse_region,
    parse_string,
)


class InvalidEvent(ValueError):
    """An event with one or more bad fields, mapped field name -> message."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__(dict(fields))
        self.fields = dict(fields)


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
# The original's last schema added these two: every kind may say which
# language the client runs in, and an item may be rented rather than bought.
LANGUAGE = Field("Language", "string", False, 16)


def _false() -> bool:
    return False


IS_RENTED = Field("IsRented", "bool", False, default=_false)  # the column's DEFAULT 0


@dataclass(frozen=True)
class Kind:
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


KINDS: dict[str, Kind] = {
    e.name: e
    for e in (
        Kind(
            "session",
            "SessionEvent",
            (
                REGION,
                _string("SessionID", 32),
                _string("RemoteIP", 45),
                _string("SessionType", 32),
                _string("Message", 45, required=False),
                Field("ProfileID", "int", False),
                LANGUAGE,
                MESSAGE_ID,
            ),
            remote_ip_column=False,
        ),
        Kind(
            "user",
            "UserEvent",
            (
                Field("ProfileID", "int", True),
                REGION,
                _string("Referrer", 64, required=False),
                _string("Message", 45, required=False),
                LANGUAGE,
                MESSAGE_ID,
            ),
            remote_ip_column=True,
        ),
        Kind(
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
                IS_RENTED,
                LANGUAGE,
                MESSAGE_ID,
            ),
            remote_ip_column=True,
        ),
        Kind(
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
                LANGUAGE,
                MESSAGE_ID,
            ),
            remote_ip_column=False,
        ),
    )
}


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
                row.append(f.parse(value))
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
