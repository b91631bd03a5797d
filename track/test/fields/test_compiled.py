"""The original four compiled from track/events/original.json behave as the
hand-written tables did, byte for byte.

The reference below is a frozen copy of the field tables and parse_event as
they were before the events file (commit 51a75b9): for many events,
valid, invalid and hostile, both must give the same row or the same error
dict (same messages, same order).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from track.fields.checks import decimal_parser, int_parser
from track.fields.kinds import KINDS, InvalidEvent, parse_event
from track.fields.messageid import new_message_id
from track.fields.values import (
    Invalid,
    JSONNumber,
    parse_bool,
    parse_message_id,
    parse_region,
    parse_string,
)

# ---- the frozen reference (track/fields/kinds.py at 51a75b9) ----


@dataclass(frozen=True)
class OldField:
    name: str
    type: str
    required: bool
    max_length: int = 0
    bmp_only: bool = False
    default: Callable[[], Any] | None = None

    def parse(self, value: object) -> Any:
        if self.type == "string":
            return parse_string(value, self.max_length, self.bmp_only)
        return _OLD_PARSERS[self.type](value)



_MONEY_RE = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")


def parse_money(value: object) -> Decimal:
    """The original's money parser as it was (track/fields/values.py at 51a75b9)."""
    if type(value) is int:
        text = str(value)
    elif isinstance(value, str) and value.isascii():
        text = value
    else:
        raise Invalid("must be a decimal number")
    m = _MONEY_RE.fullmatch(text)
    if not m:
        raise Invalid("must be a decimal number like 12 or 12.3456")
    whole, fraction = m.group(1), m.group(2) or ""
    if len(fraction) > 4:
        raise Invalid("must have at most 4 digits after the decimal point")
    if len(whole.lstrip("0")) > 15:
        raise Invalid("must have at most 15 digits before the decimal point")
    return Decimal(text).quantize(Decimal("0.0001"))

_INT_RE = re.compile(r"-?[0-9]+")


def parse_int(value: object, low: int = -(2**31), high: int = 2**31 - 1) -> int:
    """The original's int parser as it was (track/fields/values.py at 51a75b9)."""
    if type(value) is int:
        number = value
    elif type(value) is str and value.isascii() and _INT_RE.fullmatch(value):
        digits = value.lstrip("-").lstrip("0") or "0"
        if len(digits) > 20:
            raise Invalid(f"must be an integer between {low} and {high}")
        number = -int(digits) if value[0] == "-" else int(digits)
    else:
        raise Invalid("must be an integer")
    if not low <= number <= high:
        raise Invalid(f"must be an integer between {low} and {high}")
    return number


_OLD_PARSERS: dict[str, Callable[[object], Any]] = {
    "messageid": parse_message_id, "int": parse_int, "bool": parse_bool, "money": parse_money,
    "region": parse_region,
}


def _s(name: str, length: int, required: bool = True) -> OldField:
    return OldField(name, "string", required, length)


def _false() -> bool:
    return False


REGION = OldField("Region", "region", True)
MESSAGE_ID = OldField("MessageID", "messageid", False, 64, default=new_message_id)
LANGUAGE = OldField("Language", "string", False, 16)
IS_RENTED = OldField("IsRented", "bool", False, default=_false)


@dataclass(frozen=True)
class OldKind:
    name: str
    table: str
    fields: tuple[OldField, ...]
    remote_ip_column: bool

    @property
    def columns(self) -> tuple[str, ...]:
        server = ("RemoteIP", "Created") if self.remote_ip_column else ("Created",)
        return tuple(f.name for f in self.fields) + server


OLD_KINDS = {
    "session": OldKind("session", "SessionEvent", (
        REGION, _s("SessionID", 32), _s("RemoteIP", 45), _s("SessionType", 32), _s("Message", 45, False),
        OldField("ProfileID", "int", False), LANGUAGE, MESSAGE_ID), False),
    "user": OldKind("user", "UserEvent", (
        OldField("ProfileID", "int", True), REGION, _s("Referrer", 64, False), _s("Message", 45, False),
        LANGUAGE, MESSAGE_ID), True),
    "item": OldKind("item", "ItemEvent", (
        OldField("ProfileID", "int", True), REGION, _s("ItemName", 64), _s("ItemType", 45),
        OldField("IsUGC", "bool", True), OldField("PriceGold", "int", False), OldField("PriceSilver", "int", False),
        IS_RENTED, LANGUAGE, MESSAGE_ID), True),
    "purchase": OldKind("purchase", "PurchaseEvent", (
        OldField("ProfileID", "int", True), REGION, _s("Currency", 3), OldField("GrossAmount", "money", True),
        OldField("NetAmount", "money", True), _s("PaymentProvider", 45), _s("Product", 45), LANGUAGE,
        MESSAGE_ID), False),
}


def old_parse_event(kind: OldKind, data: Mapping[str, object], remote_ip: str, created: datetime) -> tuple[Any, ...]:
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
            if f.required:
                errors[f.name] = "is required"
            row.append(f.default() if f.default else None)
        elif f.type == "string" and type(value) is str and value.isascii() and len(value) <= f.max_length:
            row.append(value)
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


# ---- values: what clients send, good and bad ----

NOW = datetime(2026, 11, 28, 12, 0, 0)
TEXT = st.one_of(
    st.sampled_from(["", "eu", "EU", "NorthAmerica", "A" * 16, "A" * 17, "e", "e1", "eu ", "x" * 32, "x" * 33,
                     "x" * 45, "x" * 46, "x" * 64, "x" * 65, "EUR", "EURO", "\u00e9t\u00e9", "hi \U0001f600",
                     "\ud800", "a\x00b", "0", "1", "-1", "007", "2147483647", "2147483648", "-2147483648",
                     "-2147483649", "1.0", "1.5", "12.3456", "12.34567", "999999999999999.9999",
                     "1000000000000000", "1e3", "true", "True", "TRUE", "t", "T", "false", "F", "yes", "tRUE",
                     " 1", "1 ", "+1", "NaN", "mine-1", "a:b.c_d-e", "has space", "x" * 65, "-0", "0" * 30 + "1",
                     "0" * 19 + "5", "9" * 20, "9" * 21, "\u0663", "\u00b2"]),
    st.text(alphabet="0123456789-", min_size=1, max_size=24),
    st.text(max_size=70),
    st.text(alphabet="abcXYZ", min_size=1, max_size=20),
    st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{1,6})?", fullmatch=True),
)
VALUES = st.one_of(
    TEXT,
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([0, 1, 2, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 10**30]),
    st.booleans(),
    st.none(),
    st.builds(JSONNumber, st.sampled_from(["1.5", "1.0", "1e3", "12.34567", "-0.0001", "1E-2"])),
    st.sampled_from([[], {}, [1], {"a": 1}]),
)
FIELD_NAMES = sorted({f.name for k in OLD_KINDS.values() for f in k.fields} | {"Bogus", "region", "type"})


GOOD = {"Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1", "SessionType": "t", "ProfileID": "7",
        "ItemName": "i", "ItemType": "t", "IsUGC": "true", "Currency": "EUR", "GrossAmount": "9.99",
        "NetAmount": JSONNumber("8.5"), "PaymentProvider": "p", "Product": "x", "Message": "\u00e9t\u00e9",
        "Language": "en", "MessageID": "m-1", "IsRented": "", "Referrer": "r", "PriceGold": 3, "PriceSilver": "-2"}


def good_values(f: OldField) -> st.SearchStrategy[object]:
    """Values the field takes (mostly)."""
    if f.type == "int":
        return st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1).map(str))
    if f.type == "bool":
        return st.sampled_from([True, False, 0, 1, "1", "t", "T", "TRUE", "true", "True", "0", "f", "False", ""])
    if f.type == "money":
        return st.one_of(st.from_regex(r"-?[0-9]{1,15}(\.[0-9]{1,4})?", fullmatch=True),
                         st.integers(-(10**15) + 1, 10**15 - 1))
    if f.type == "region":
        return st.from_regex(r"[A-Za-z]{2,16}", fullmatch=True)
    if f.type == "messageid":
        return st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)
    return st.text(max_size=f.max_length)


def events(kind: str) -> st.SearchStrategy[dict[str, object]]:
    """A whole event with a few fields changed, dropped or added: many are
    stored, many refused."""
    fields = OLD_KINDS[kind].fields
    names = [f.name for f in fields]
    changes = st.one_of(
        st.dictionaries(st.sampled_from(names + FIELD_NAMES), VALUES, max_size=2),
        st.fixed_dictionaries({}, optional={f.name: good_values(f) for f in fields}),
    )
    dropped = st.sets(st.sampled_from(names), max_size=1)

    def event(changed: dict[str, object], gone: set[str]) -> dict[str, object]:
        data = {name: GOOD[name] for name in names if name not in gone}
        data.update(changed)
        return data

    return st.one_of(st.builds(event, changes, dropped),
                     st.dictionaries(st.sampled_from(names + FIELD_NAMES), VALUES, max_size=len(names) + 2))


def outcome(parse: Callable[..., tuple[Any, ...]], kind: Any, data: dict[str, object]) -> tuple[str, Any]:
    try:
        row = parse(kind, dict(data), "10.1.2.3", NOW)
    except InvalidEvent as e:
        return "invalid", list(e.fields.items())  # the order too
    index = kind.columns.index("MessageID")
    if "MessageID" not in data or data["MessageID"] == "":
        row = (*row[:index], "<assigned>", *row[index + 1:])  # a fresh UUID each time
    return "row", [(type(v), v) for v in row]


class CompiledOriginalTests(SynchronousTestCase):
    def test_the_tables_name_the_same_columns(self) -> None:
        self.assertEqual(list(KINDS), list(OLD_KINDS))
        for name, old in OLD_KINDS.items():
            new = KINDS[name]
            self.assertEqual((new.name, new.table, new.columns, new.remote_ip_column),
                             (old.name, old.table, old.columns, old.remote_ip_column))
            self.assertEqual([(f.name, f.type, f.required, f.max_length, f.bmp_only) for f in new.fields],
                             [(f.name, f.type, f.required, f.max_length, f.bmp_only) for f in old.fields])

    @settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.sampled_from(sorted(OLD_KINDS)).flatmap(lambda k: st.tuples(st.just(k), events(k))))
    def test_every_event_gets_the_same_row_or_the_same_errors(self, case: tuple[str, dict[str, object]]) -> None:
        kind, data = case
        self.assertEqual(outcome(parse_event, KINDS[kind], data), outcome(old_parse_event, OLD_KINDS[kind], data))

    def test_complete_events_give_the_same_rows(self) -> None:
        """The hypothesis cases above are mostly refusals; these are whole events."""
        for name, old in OLD_KINDS.items():
            data = {f.name: GOOD[f.name] for f in old.fields}
            with self.subTest(kind=name):
                result = outcome(parse_event, KINDS[name], data)
                self.assertEqual(result[0], "row")
                self.assertEqual(result, outcome(old_parse_event, old, data))
                del data["MessageID"]
                self.assertEqual(outcome(parse_event, KINDS[name], data), outcome(old_parse_event, old, data))


class ParserFactoryTests(SynchronousTestCase):
    """The general parsers, at the original's settings, are the original's."""

    @settings(max_examples=500, deadline=None)
    @given(VALUES)
    def test_decimal_at_four_places_is_money_and_int32_is_parse_int(self, value: object) -> None:
        for general, original in ((decimal_parser(4), parse_money), (int_parser(), parse_int),
                                  (int_parser(-(2**31), 2**31 - 1), parse_int)):
            results: list[tuple[Any, ...]] = []
            for parse in (general, original):
                try:
                    parsed = parse(value)
                    results.append(("ok", type(parsed), parsed))
                except Invalid as e:
                    results.append(("invalid", str(e)))
            self.assertEqual(results[0], results[1], (general, value))

    def test_a_money_value_keeps_its_digits(self) -> None:
        self.assertEqual(str(decimal_parser(4)("123456789012345.6789")), "123456789012345.6789")
        self.assertEqual(decimal_parser(4)(7), Decimal("7.0000"))
