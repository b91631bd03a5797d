"""Property tests (Hypothesis) for the validator and the body parsers: valid
values always parse to exactly what was meant, and nothing, however
malformed, raises anything but a clean client error."""

from __future__ import annotations

import gzip
import json
import string
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from track.fields.checks import parse_money
from track.fields.kinds import KINDS, InvalidEvent, parse_event
from track.fields.values import (
    INT32_MAX,
    INT32_MIN,
    Invalid,
    parse_bool,
    parse_int,
    parse_region,
    parse_string,
)
from track.web.bodies.body import (
    BodyError,
    decode_content,
    parse_form,
    parse_json,
    read_fields,
)

NOW = __import__("datetime").datetime(2026, 1, 1)
ints = st.integers(INT32_MIN, INT32_MAX)
money = st.decimals(min_value=Decimal("-999999999999999.9999"), max_value=Decimal("999999999999999.9999"),
                    places=4, allow_nan=False, allow_infinity=False)
regions = st.text(alphabet=string.ascii_letters, min_size=2, max_size=16)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)


def field_values(f: Any) -> st.SearchStrategy[Any]:
    """Valid values of a field, as a client could send them."""
    if f.type == "string":
        return st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=f.max_length)
    if f.type == "int":
        return ints | ints.map(str)
    if f.type == "bool":
        return st.booleans() | st.sampled_from(["1", "t", "T", "TRUE", "true", "True",
                                                "0", "f", "F", "FALSE", "false", "False"])
    if f.type == "money":
        return money.map(str) | st.integers(-10**15 + 1, 10**15 - 1)
    return regions


@st.composite
def valid_events(draw: Any) -> tuple[Any, dict[str, Any]]:
    kind = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    data = {f.name: draw(field_values(f)) for f in kind.fields
            if f.required or draw(st.booleans())}
    return kind, data


class FieldProperties(SynchronousTestCase):
    @given(ints)
    def test_ints_round_trip(self, n: int) -> None:
        self.assertEqual(parse_int(str(n)), n)
        self.assertEqual(parse_int(n), n)

    @given(st.text())
    def test_any_text_is_an_int_only_if_it_is_ascii_decimal_in_range(self, text: str) -> None:
        try:
            value = parse_int(text)
        except Invalid:
            return
        self.assertTrue(text.isascii() and text.lstrip("-").isdigit())
        self.assertEqual(value, int(text))
        self.assertTrue(INT32_MIN <= value <= INT32_MAX)

    @given(money)
    def test_money_is_exact(self, amount: Decimal) -> None:
        self.assertEqual(parse_money(str(amount)), amount)
        self.assertEqual(str(parse_money(str(amount))), str(amount.quantize(Decimal("0.0001"))))

    @given(st.text())
    def test_any_text_is_money_only_if_exactly_representable(self, text: str) -> None:
        try:
            value = parse_money(text)
        except Invalid:
            return
        self.assertEqual(value, Decimal(text))
        self.assertLess(abs(value), Decimal(10) ** 15)

    @given(st.one_of(st.text(), json_values))
    def test_bool_and_region_accept_only_their_sets(self, value: Any) -> None:
        for parse, ok in ((parse_bool, lambda v: isinstance(v, bool)),
                          (parse_region, lambda v: isinstance(v, str) and v.isascii() and v.isalpha())):
            try:
                result = parse(value)
            except Invalid:
                continue
            self.assertTrue(ok(result))

    @given(st.text(), st.integers(0, 64))
    def test_strings_are_kept_or_refused_never_changed(self, text: str, limit: int) -> None:
        try:
            self.assertEqual(parse_string(text, limit), text)
        except Invalid:
            self.assertTrue(len(text) > limit or any(0xD800 <= ord(c) <= 0xDFFF for c in text))


class EventProperties(SynchronousTestCase):
    @given(valid_events())
    def test_valid_events_parse_into_rows(self, case: tuple[Any, dict[str, Any]]) -> None:
        event, data = case
        row = parse_event(event, data, "203.0.113.1", NOW)
        self.assertEqual(len(row), len(event.columns))

    @given(st.sampled_from(sorted(KINDS)), st.dictionaries(st.text(max_size=12), json_values, max_size=8))
    def test_anything_else_is_invalid_event_and_nothing_worse(self, kind: str, data: dict[str, Any]) -> None:
        try:
            parse_event(KINDS[kind], data, "", NOW)
        except InvalidEvent as e:
            self.assertTrue(e.fields)

    @given(valid_events())
    def test_valid_events_survive_form_and_json_encoding(self, case: tuple[Any, dict[str, Any]]) -> None:
        event, data = case
        as_text = {k: (("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in data.items()}
        form = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in as_text.items()).encode()
        from_form = parse_event(event, read_fields(b"application/x-www-form-urlencoded", form), "", NOW)
        from_json = parse_event(event, read_fields(b"application/json", json.dumps(data).encode()), "", NOW)
        i = event.message_id_index  # assigned afresh for each parse
        self.assertEqual(from_form[:i] + from_form[i + 1:], from_json[:i] + from_json[i + 1:])


class ParserProperties(SynchronousTestCase):
    @settings(max_examples=300)
    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_are_a_form_or_a_400(self, data: bytes) -> None:
        try:
            fields = parse_form(data, "body")
        except BodyError as e:
            self.assertEqual(e.code, 400)
        else:
            self.assertTrue(all(isinstance(v, str) for v in fields.values()))

    @settings(max_examples=300)
    @given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
    def test_arbitrary_bytes_are_a_json_object_or_a_400(self, data: bytes) -> None:
        try:
            self.assertIsInstance(parse_json(data), dict)
        except BodyError as e:
            self.assertEqual(e.code, 400)

    @given(st.binary(max_size=2000), st.integers(1, 4096), st.booleans())
    def test_gzip_inflates_exactly_or_refuses(self, data: bytes, limit: int, corrupt: bool) -> None:
        packed = gzip.compress(data)
        if corrupt:
            packed = packed[: len(packed) // 2]
        try:
            self.assertEqual(decode_content(b"gzip", packed, limit), data)
            self.assertLessEqual(len(data), limit)
        except BodyError as e:
            self.assertIn(e.code, (400, 413) if corrupt else (413,))
