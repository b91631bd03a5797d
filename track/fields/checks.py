"""The parsers a declared property's rules compile to: built once per field
when the kinds are compiled, never per event.

Each takes a value as a body gives it (a str, an int, a bool, a JSONNumber)
and returns it parsed exactly, or raises Invalid with the words a 400 shows.
The original four's rules compile to the very parsers they always had
(parse_int, parse_region; parse_money is decimal_parser at 4 places): same answers, same speed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from track.events.subset import ecma_regex
from track.fields.values import (
    _MONEY_RE,
    INT32_MAX,
    INT32_MIN,
    MONEY_PLACES,
    Invalid,
    _is_int,
    parse_int,
    parse_string,
)

Parser = Callable[[object], Any]
DECIMAL_PRECISION = 19  # every number column is DECIMAL(19, scale), as the original's money
_EXAMPLE_DIGITS = "3456789012345678901234567890"


def plain(number: Decimal | int) -> str:
    """A bound as a 400 and the document write it: 100, 0.5 (never 1E+2)."""
    return f"{number:f}" if isinstance(number, Decimal) else str(number)


def int_parser(low: int = INT32_MIN, high: int = INT32_MAX) -> Parser:
    """Integers from `low` to `high`, as JSON or text (parse_int's words)."""
    if (low, high) == (INT32_MIN, INT32_MAX):
        return parse_int

    def parse_in_range(value: object) -> int:
        if type(value) is int and low <= value <= high:  # a JSON integer in range: no call
            return value
        return parse_int(value, low, high)

    return parse_in_range


def bounds_message(low: Decimal | int | None, high: Decimal | int | None) -> str:
    if low is not None and high is not None:
        return f"must be a decimal number between {plain(low)} and {plain(high)}"
    if low is not None:
        return f"must be a decimal number of at least {plain(low)}"
    return f"must be a decimal number of at most {plain(high)}"  # type: ignore[arg-type]


def decimal_parser(places: int = 4, low: Decimal | int | None = None, high: Decimal | int | None = None) -> Parser:
    """Decimal numbers kept exactly, with at most `places` digits after the
    point (more are refused, never rounded) and the digits before it that
    DECIMAL(19, places) holds.  At 4 places without bounds: the original's
    money, word for word."""
    whole_digits = max(0, DECIMAL_PRECISION - places)
    quantum = Decimal(1).scaleb(-places)
    example = "12." + _EXAMPLE_DIGITS[:places] if places else "12"
    too_fine = (f"must have at most {places} digits after the decimal point" if places
                else "must be a whole number: no digits after the decimal point")
    too_large = f"must have at most {whole_digits} digits before the decimal point"
    out_of_bounds = bounds_message(low, high) if low is not None or high is not None else ""
    low_d = Decimal(low) if low is not None else None
    high_d = Decimal(high) if high is not None else None

    def parse_decimal(value: object) -> Decimal:
        if isinstance(value, str) and value.isascii():  # text, or a JSONNumber's
            text = value
        elif _is_int(value):
            text = str(value)
        else:
            raise Invalid("must be a decimal number")
        m = _MONEY_RE.fullmatch(text)
        if not m:
            raise Invalid(f"must be a decimal number like 12 or {example}" if places
                          else "must be a decimal number like 12")
        whole, fraction = m.groups()
        if fraction is not None and len(fraction) > places:
            raise Invalid(too_fine)
        if len(whole) > whole_digits and len(whole.lstrip("0")) > whole_digits:
            raise Invalid(too_large)
        number = Decimal(text).quantize(quantum)
        if out_of_bounds and ((low_d is not None and number < low_d) or (high_d is not None and number > high_d)):
            raise Invalid(out_of_bounds)
        return number

    return parse_decimal


# The original's money: DECIMAL(19,4), word for word.
parse_money = decimal_parser(MONEY_PLACES)


def enum_message(values: tuple[str, ...]) -> str:
    """The words a 400 (and the client) give a value outside the enum."""
    return "must be one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


def enum_parser(values: tuple[str, ...]) -> Parser:
    """Exactly one of `values` (a string: 1 is not "1")."""
    taken = frozenset(values)
    message = enum_message(values)

    def parse_enum(value: object) -> str:
        if type(value) is str and value in taken:
            return value
        raise Invalid(message)

    return parse_enum


def pattern_message(pattern: str) -> str:
    return f"must match {pattern}"


def pattern_parser(pattern: str, max_length: int) -> Parser:
    """A string of at most `max_length` characters in which the (ECMA-262,
    unanchored) `pattern` matches; \\d and \\w mean ASCII, as in ECMA."""
    search = re.compile(ecma_regex(pattern), re.ASCII).search
    message = pattern_message(pattern)

    def parse_pattern(value: object) -> str:
        text = parse_string(value, max_length)
        if search(text) is None:
            raise Invalid(message)
        return text

    return parse_pattern


def saying(parse: Parser, message: str) -> Parser:
    """`parse`, with every refusal in `message`'s words (x-track-message)."""

    def parse_or_say(value: object) -> Any:
        try:
            return parse(value)
        except Invalid:
            raise Invalid(message) from None

    return parse_or_say
