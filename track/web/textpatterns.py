"""Regular expressions for the OpenAPI document: exactly the text each
field's parser takes (track.fields), so a form value the document allows
is one the server stores.  Leading zeros are allowed, as the parsers allow
them."""

from __future__ import annotations

from track.fields.values import INT32_MAX, INT32_MIN


def upto(n: int) -> str:
    """A regex alternation of the decimal numbers 0..n, without leading zeros."""
    digits = str(n)
    alternatives = ["0"]
    if len(digits) > 1:
        alternatives.append(f"[1-9][0-9]{{0,{len(digits) - 2}}}")
    for i, d in enumerate(digits):
        low, rest = 1 if i == 0 else 0, len(digits) - i - 1
        if int(d) > low:
            below = f"[{low}-{int(d) - 1}]" if int(d) - 1 > low else str(low)
            alternatives.append(digits[:i] + below + (f"[0-9]{{{rest}}}" if rest else ""))
    alternatives.append(digits)
    return "|".join(alternatives)


INT_BODY = f"-?0*(?:{upto(INT32_MAX)})|-0*{-INT32_MIN}"  # the 32-bit range, as published since 1.0


def _digit(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"


def _group(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"


def _same_length(low: str, high: str) -> list[str]:
    """Alternatives matching the numbers from `low` to `high`, both written
    with the same count of digits (no leading zeros unless one digit)."""
    if len(low) == 1:
        return [_digit(low, high)]
    if low[0] == high[0]:
        return [low[0] + _group(_same_length(low[1:], high[1:]))]
    n = len(low) - 1
    low_whole, high_whole = low[1:] == "0" * n, high[1:] == "9" * n  # the first digit takes every tail
    first, last = int(low[0]) + (not low_whole), int(high[0]) - (not high_whole)
    out = []
    if not low_whole:  # low[0] followed by low[1:]..99
        out.append(low[0] + _group(_same_length(low[1:], "9" * n)))
    if first <= last:  # first digits followed by anything
        out.append(_digit(str(first), str(last)) + f"[0-9]{{{n}}}")
    if not high_whole:  # high[0] followed by 00..high[1:]
        out.append(high[0] + _group(_same_length("0" * n, high[1:])))
    return out


def span(low: int, high: int) -> str:
    """An alternation matching the decimal numbers low..high (0 <= low <= high)
    written without leading zeros."""
    out = []
    for length in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (length - 1) if length > 1 else 0)
        last = min(high, 10**length - 1)
        if first <= last:
            out.extend(_same_length(str(first), str(last)))
    return "|".join(out)


def int_body(low: int, high: int) -> str:
    """What parse_int(value, low, high) takes as text: an optional minus,
    leading zeros, and a number in the range ("-0" is 0)."""
    if (low, high) == (INT32_MIN, INT32_MAX):
        return INT_BODY
    parts = []
    if high >= 0:
        parts.append(f"0*(?:{span(max(low, 0), high)})")
        if low <= 0:
            parts.append("-0+")
    if low < 0:
        parts.append(f"-0*(?:{span(max(1, -high), -low)})")
    return "|".join(parts)


def decimal_body(places: int, whole_digits: int) -> str:
    """What a decimal number parser takes as text (track.fields.checks)."""
    fraction = rf"(?:\.[0-9]{{1,{places}}})?" if places else ""
    if whole_digits <= 0:  # DECIMAL(19, 19): nothing but zeros before the point
        return rf"-?0+{fraction}"
    return rf"-?0*[0-9]{{1,{whole_digits}}}{fraction}"


def anchored(body: str, optional: bool) -> str:
    """Anchored; an optional non-string field also takes "" (not given)."""
    if optional:
        return f"^(?:{body})?$"
    return f"^(?:{body})$" if "|" in body else f"^{body}$"
