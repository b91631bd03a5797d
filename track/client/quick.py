"""The common event, checked and made into its line in one pass.

Most events are a dict of ASCII strings and ints that the rules take as they
are.  For those, what `Client.encode` answers (the line and the MessageID)
is made here from plans compiled once per set of rules: no copies of the
event, no call per field, no JSON encoder.  Any other event (a value of
another type, an empty or non-ASCII string, a field whose rule is more than
a length, a pattern or a range, a value its rule refuses) gets None, and the
general path (`prepare`, `Rules.check`, `line`) decides, and says what is
wrong if anything is.  So this path takes only what that one takes, and
makes the very line it would make.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from json.encoder import encode_basestring  # what the general path's encoder quotes strings with
from typing import Any

from track.client.events import new_message_id, now_ms

StringRule = tuple[float, float, "re.Pattern[str] | None"]  # (minLength, maxLength, compiled pattern or None)
IntegerRule = tuple[float, float]  # (minimum, maximum)
# A field's JSON key (with its colon), its rules, and the string values it
# took, each with its "key":"value" text.
Plan = tuple[str, StringRule | None, IntegerRule | None, dict[str, str]]
KNOWN_MAX = 256  # string values remembered per field: "eu" is checked once; unique IDs stop at this many
_STRING_KEYS = {"type", "maxLength", "minLength", "pattern", "description", "x-bmp-only"}
_INTEGER_KEYS = {"type", "minimum", "maximum", "description"}
# The collector's MessageID pattern (track.fields.values): every MessageID
# this client makes (hex digits and a dash, 34 to 49 characters) matches it.
OUR_MESSAGE_IDS_MATCH = "^(?:[A-Za-z0-9._:-]{1,64})?$"
OUR_MESSAGE_ID_LENGTHS = (34, 49)


def anchored(pattern: str) -> str:
    """An ECMA-262 pattern as Python's re reads it: `$` outside a class is
    the end of the text (Python's would also match before a final newline)."""
    out, in_class, escaped = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(ch)
    return "".join(out)


def _string(schema: Mapping[str, Any]) -> StringRule | None:
    """A string rule the general check reads exactly as its length and
    pattern (x-bmp-only passes any ASCII value)."""
    if schema.get("type") != "string" or not set(schema) <= _STRING_KEYS:
        return None
    pattern = re.compile(anchored(schema["pattern"]), re.ASCII) if "pattern" in schema else None
    return schema.get("minLength", 0), schema.get("maxLength", math.inf), pattern


def _integer(schema: Mapping[str, Any]) -> IntegerRule | None:
    if schema.get("type") != "integer" or not set(schema) <= _INTEGER_KEYS:
        return None
    return schema.get("minimum", -math.inf), schema.get("maximum", math.inf)


def _first(rules: list[Any]) -> Any:
    return next((r for r in rules if r is not None), None)


class Plans:
    """One kind's plans: for each field, its JSON key and the rules a string
    or an int value of it surely passes (one of a oneOf's alternatives is
    enough: the general check takes a value any alternative takes)."""

    def __init__(self, kind: str, required: frozenset[str], properties: Mapping[str, Mapping[str, Any]]) -> None:
        self.head = f'{{"type":"{kind}"'  # as line() writes it
        self.required = required
        self.fields: dict[str, Plan] = {}
        for name, schema in properties.items():
            alternatives = list(schema["oneOf"]) if "oneOf" in schema else [schema]
            self.fields[name] = (encode_basestring(name) + ":", _first([_string(a) for a in alternatives]),
                                 _first([_integer(a) for a in alternatives]), {})
        rule = self.fields["MessageID"][1] if "MessageID" in self.fields else None
        low, high = OUR_MESSAGE_ID_LENGTHS
        # Whether each MessageID made here passes, known once: None if not surely.
        self.our_message_ids = rule is not None and rule[0] <= low and high <= rule[1] and (
            rule[2] is None or rule[2].pattern == anchored(OUR_MESSAGE_IDS_MATCH))

    def line(self, fields: Mapping[str, object]) -> tuple[str, str] | None:
        """(line, MessageID), or None for the general path."""
        if type(fields) is not dict:
            return None
        plans = self.fields
        parts = [self.head]
        append = parts.append
        for name, value in fields.items():
            plan = plans.get(name)
            if plan is None:
                return None
            kind_of = type(value)
            if kind_of is str:
                piece = plan[3].get(value)
                if piece is None:
                    rule = plan[1]
                    if (rule is None or not value or not value.isascii() or not rule[0] <= len(value) <= rule[1]
                            or (rule[2] is not None and not rule[2].search(value))):
                        return None
                    piece = plan[0] + encode_basestring(value)
                    if len(plan[3]) < KNOWN_MAX:
                        plan[3][value] = piece
                append(piece)
            elif kind_of is int:
                limits = plan[2]
                if limits is None or not limits[0] <= value <= limits[1]:
                    return None
                append(plan[0] + int.__repr__(value))
            else:
                return None
        if not self.required <= fields.keys():
            return None
        message_id = fields.get("MessageID")
        if message_id is None:
            if not self.our_message_ids:
                return None
            message_id = new_message_id()
            append('"MessageID":"' + message_id + '"')
        if "Timestamp" not in fields:
            append('"Timestamp":' + str(now_ms()))
        return ",".join(parts) + "}", str(message_id)
