"""The collector's field rules, read from its OpenAPI document.

The client checks an event against what the collector publishes about its
batch endpoint (`GET /api/1.0/openapi.json`), so a column widened in the
database is honoured as soon as the collector says so, and the client never
refuses an event the collector would take.  Until the document is fetched (or
when it cannot be), the rules of `rules.json` are used: a snapshot of what
the collector publishes for the default schema, which a test keeps equal to
what the server generates.

Only the part of JSON Schema the document uses is understood: `type`,
`enum`, `pattern` (ECMA-262, unanchored), `minLength`/`maxLength`,
`minimum`/`maximum` (and their exclusive forms), `multipleOf` (as the
collector reads it: no more digits after the point than it has), `oneOf`,
and the document's own `x-bmp-only` (a 3-byte utf8 column: no emoji) and
`x-track-message` (the words of every refusal of that field).  Anything
else (`format`, `default`, `description`) is not checked here: `format:
date-time` comes with the pattern that says it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from track.client.events import JSONNumber
from track.client.quick import Plans, anchored

# A field's check: None when the value passes, else why not (as the server says it).
Check = Callable[[object], "str | None"]


def rules_from_openapi(document: Mapping[str, Any]) -> dict[str, Any]:
    """{kind: {"required": [...], "properties": {name: schema}}} from the
    batch endpoint's event schemas (each names its kind in "type")."""
    paths = document["paths"]
    batch = next(item for path, item in paths.items() if path.rstrip("/").endswith("/batch"))
    envelope = batch["post"]["requestBody"]["content"]["application/json"]["schema"]
    kinds: dict[str, Any] = {}
    for event in envelope["properties"]["events"]["items"]["oneOf"]:
        properties = dict(event["properties"])
        kind = properties.pop("type")["enum"][0]
        kinds[kind] = {"required": [name for name in event["required"] if name != "type"],
                       "properties": properties}
    return kinds


def builtin_rules() -> dict[str, Any]:
    """The snapshot shipped with the client (rules.json)."""
    text = resources.files("track.client").joinpath("rules.json").read_text(encoding="utf-8")
    rules: dict[str, Any] = json.loads(text)
    return rules


def _decimal(value: object) -> Decimal | None:
    """A JSON number's exact value, or None for anything else."""
    if type(value) is int:
        return Decimal(value)
    if isinstance(value, JSONNumber):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def _type_ok(kind: str | None, value: object) -> bool:
    if kind is None:
        return True
    if kind == "string":
        return type(value) is str
    if kind == "integer":
        return type(value) is int
    if kind == "boolean":
        return type(value) is bool
    if kind == "number":
        return type(value) is int or isinstance(value, JSONNumber)
    return False


_NUMBER_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "boolean": "a boolean", "number": "a decimal number"}


def _check_one(schema: Mapping[str, Any], value: object) -> str | None:
    """Why `value` does not match `schema` (no oneOf), or None."""
    kind: str | None = schema.get("type")
    if not _type_ok(kind, value):
        return f"must be {_TYPE_WORDS.get(str(kind), kind)}"
    if "enum" in schema and not any(type(value) is type(e) and value == e for e in schema["enum"]):
        # "" (not given) never reaches a check, so it is not offered.
        return "must be one of " + ", ".join(json.dumps(e, ensure_ascii=False) for e in schema["enum"] if e != "")
    if type(value) is str:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"must be at most {schema['maxLength']} characters"
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"must be at least {schema['minLength']} characters"
        if "pattern" in schema and not re.search(anchored(schema["pattern"]), value, re.ASCII):
            return f"must match {schema['pattern'].removeprefix(NOT_GIVEN)}"
        if schema.get("x-bmp-only") and not value.isascii() and any(ord(c) > 0xFFFF for c in value):
            return ("contains characters outside the Basic Multilingual Plane (such as emoji), "
                    "which this database column (3-byte utf8) cannot store")
    number = _decimal(value) if kind in ("integer", "number") else None
    if kind is not None and number is not None:
        low, high = schema.get("minimum"), schema.get("maximum")
        below = low is not None and (number <= Decimal(repr(low)) if schema.get("exclusiveMinimum")
                                     else number < Decimal(repr(low)))
        above = high is not None and (number >= Decimal(repr(high)) if schema.get("exclusiveMaximum")
                                      else number > Decimal(repr(high)))
        if below or above:
            return _out_of_range(schema, kind, low, high)
        step = schema.get("multipleOf")
        if step is not None:
            step_d = Decimal(repr(step)).normalize()
            places = -step_d.as_tuple().exponent  # type: ignore[operator]
            if step_d == Decimal(1).scaleb(-places) and places >= 0:  # a power of ten: digits as written
                if -number.as_tuple().exponent > places:  # type: ignore[operator]
                    return (f"must have at most {places} digits after the decimal point" if places
                            else "must be a whole number: no digits after the decimal point")
            elif number % step_d != 0:
                return f"must be a multiple of {step_d}"
    return None


def _out_of_range(schema: Mapping[str, Any], kind: str, low: Any, high: Any) -> str:
    """The collector's words: a declared (inclusive) bound is named alone
    when the other end is only the column's limit (exclusive)."""
    inclusive_low = low is not None and not schema.get("exclusiveMinimum")
    inclusive_high = high is not None and not schema.get("exclusiveMaximum")
    if inclusive_low and not inclusive_high:
        return f"must be {_TYPE_WORDS[kind]} of at least {_plain(low)}"
    if inclusive_high and not inclusive_low:
        return f"must be {_TYPE_WORDS[kind]} of at most {_plain(high)}"
    return f"must be {_TYPE_WORDS[kind]} between {_plain(low)} and {_plain(high)}"


def _plain(number: Any) -> str:
    return f"{Decimal(repr(number)).normalize():f}" if type(number) is float else str(number)


NOT_GIVEN = "^$|"  # what the document puts before an optional field's pattern: "" is not given


def _check(schema: Mapping[str, Any], value: object) -> str | None:
    if "oneOf" not in schema:
        return _check_one(schema, value)
    reasons = []
    for alternative in schema["oneOf"]:
        reason = _check(alternative, value)
        if reason is None:
            return None
        reasons.append((alternative, reason))
    # The reason of a typed alternative the value is of (an int out of
    # range; a number's text, read as the collector reads it), else what
    # the field is (text is also accepted for those), else the reason of
    # the alternative of the value's own type.
    if type(value) is str and len(value) <= 40 and _NUMBER_TEXT.fullmatch(value):
        for alternative, _ in reasons:
            if alternative.get("type") in ("integer", "number"):
                number = int(value) if alternative["type"] == "integer" and "." not in value else JSONNumber(value)
                typed = _check_one(alternative, number)
                if typed is not None:
                    return typed
    for alternative, reason in reasons:
        if alternative.get("type") not in (None, "string") and _type_ok(alternative["type"], value):
            return reason
    kinds = [a.get("type") for a in schema["oneOf"]]
    for preferred in ("integer", "boolean", "number"):
        if preferred in kinds:
            return f"must be {_TYPE_WORDS[preferred]}"
    for alternative, reason in reasons:
        if _type_ok(alternative.get("type"), value):
            return reason
    return reasons[0][1]


# Keywords that say nothing a check needs (format: date-time comes with its pattern).
_NOTES = frozenset({"description", "default", "format", "x-track-message"})


def _compile(schema: Mapping[str, Any]) -> Check:
    """A field's check; with `x-track-message`, refusals say those words."""
    check = _compile_rules(schema)
    message = schema.get("x-track-message")
    if not message:
        return check

    def saying(value: object) -> str | None:
        return None if check(value) is None else str(message)
    return saying


def _compile_rules(schema: Mapping[str, Any]) -> Check:
    """A fast check for the common cases (a string, an integer), the full
    one for anything else and to say why."""
    kind = schema.get("type")
    keys = set(schema) - _NOTES
    if kind == "string" and keys <= {"type", "maxLength", "minLength", "pattern", "x-bmp-only"}:
        most, least = schema.get("maxLength", math.inf), schema.get("minLength", 0)
        pattern = re.compile(anchored(schema["pattern"]), re.ASCII) if "pattern" in schema else None
        any_plane = not schema.get("x-bmp-only")

        def string(value: object) -> str | None:
            if (type(value) is str and least <= len(value) <= most and (pattern is None or pattern.search(value))
                    and (any_plane or value.isascii())):
                return None
            return _check_one(schema, value)
        return string
    if "oneOf" in schema:
        fast = [(a["type"], _compile_rules(a)) for a in schema["oneOf"] if a.get("type") in ("string", "integer")]

        def one_of(value: object) -> str | None:
            for type_name, check in fast:
                if _type_ok(type_name, value) and check(value) is None:
                    return None
            return _check(schema, value)
        return one_of
    if kind == "integer" and keys <= {"type", "minimum", "maximum"}:
        low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)

        def integer(value: object) -> str | None:
            if type(value) is int and low <= value <= high:
                return None
            return _check_one(schema, value)
        return integer
    return lambda value: _check(schema, value)


class Rules:
    """Checks events against one set of rules (the snapshot's or a document's)."""

    def __init__(self, rules: Mapping[str, Any], source: str) -> None:
        self.source = source  # where they came from, for messages
        self.kinds: dict[str, tuple[frozenset[str], dict[str, Check]]] = {
            kind: (frozenset(r["required"]), {name: _compile(s) for name, s in r["properties"].items()})
            for kind, r in rules.items()
        }
        self.plans = {kind: Plans(kind, frozenset(r["required"]), r["properties"]) for kind, r in rules.items()}

    def knows(self, kind: str, name: str) -> bool:
        entry = self.kinds.get(kind)
        return entry is not None and name in entry[1]

    def check(self, kind: object, values: Mapping[str, object]) -> dict[str, str]:
        """Each field the collector would refuse, with why (as its 400 says);
        empty when it would take the event."""
        entry = self.kinds.get(kind) if isinstance(kind, str) else None
        if entry is None:
            return {"type": f"must be one of {', '.join(self.kinds)}"}
        required, checks = entry
        errors: dict[str, str] = {}
        for name in required:
            if name not in values:
                errors[name] = "is required"
        for name, value in values.items():
            check = checks.get(name)
            if check is None:
                errors[name] = "unknown field"
            elif value is None:
                errors[name] = "must not be null"
            elif value == "" and type(value) is str:
                # The collector reads an empty value as "not given", as the original did.
                if name in required:
                    errors[name] = "is required"
            elif (reason := check(value)) is not None:
                errors[name] = reason
        return errors

    def check_event(self, kind: str, seen: Mapping[str, object]) -> dict[str, str]:
        """check() of an event as prepare() read it."""
        if "Timestamp" in seen and not self.knows(kind, "Timestamp"):
            # Every event may carry one (the wire contract); these rules do
            # not describe it: the collector checks it.
            seen = {k: v for k, v in seen.items() if k != "Timestamp"}
        return self.check(kind, seen)

    def quick(self, kind: str, fields: Mapping[str, object]) -> tuple[str, str] | None:
        """Client.encode's answer for the common event (track.client.quick),
        or None: then prepare() and check() decide."""
        plans = self.plans.get(kind) if isinstance(kind, str) else None
        return None if plans is None else plans.line(fields)
