"""Parsers for one field's value: exact, or an Invalid naming the problem.

Nothing is coerced, truncated or guessed: "1.0" is no int, "yes" no bool.
"""

from __future__ import annotations

import re
from typing import TypeGuard

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MONEY_PLACES = 4
MONEY_MAX_INTEGER_DIGITS = 15  # DECIMAL(19,4)

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


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # not bool, which is an int to isinstance


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
    elif type(value) is str and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)  # plain ASCII digits, as a form sends them: no regex
    elif type(value) is str and value.isascii() and _INT_RE.fullmatch(value):
        digits = value.lstrip("-").lstrip("0") or "0"
        if len(digits) > 20:  # far out of range, and int() refuses 4300+ digits
            raise Invalid(f"must be an integer between {low} and {high}")
        number = -int(digits) if value[0] == "-" else int(digits)
    else:
        raise Invalid("must be an integer")
    if not low <= number <= high:
        raise Invalid(f"must be an integer between {low} and {high}")
    return number


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


def parse_region(value: object) -> str:
    if type(value) is not str or not value.isascii() or not _REGION_RE.fullmatch(value):
        raise Invalid("must be 2 to 16 letters A-Z or a-z")
    return value


def parse_message_id(value: object) -> str:
    if type(value) is not str or not value.isascii() or not _MESSAGE_ID_RE.fullmatch(value):
        raise Invalid(f"must be 1 to {MESSAGE_ID_MAX} characters from A-Z a-z 0-9 . _ : -")
    return value
