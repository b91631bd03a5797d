"""The JSON Schema subset an events file is written in, and its checks.

Every keyword is either understood or refused at start, naming the kind,
the property and the keyword: a schema that says more than track enforces
would promise checks that never happen.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from track.events.declared import (
    BOOLEAN,
    DATE_TIME,
    INT64,
    INTEGER,
    NUMBER,
    PRECISION,
    STRING,
    DeclaredKind,
    Property,
)

KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a path segment: /api/1.0/track/<kind>/
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # a table or column name
# Names with a meaning of their own in every event or batch.
RESERVED = frozenset({"MessageID", "Created", "EventID", "Timestamp", "type"})
INTERNAL_TABLES = frozenset({"trackschemaversion", "trackeventkinds"})
MAX_STRING = 16383  # the most characters a utf8mb4 VARCHAR holds
MAX_SCALE = PRECISION - 1  # DECIMAL(19, scale) keeps at least one digit before the point

ANNOTATIONS = frozenset({"description", "title", "$comment", "examples"})
TOP_KEYS = frozenset({"kinds", "original_kinds", "$schema", "description", "$comment"})
KIND_KEYS = frozenset({"table", "schema", "description", "$comment", "x-track-remote-ip"})
SCHEMA_KEYS = frozenset({"type", "required", "properties", "additionalProperties", "$schema"}) | ANNOTATIONS
COMMON_KEYS = frozenset({"type", "default", "x-track-message"}) | ANNOTATIONS
TYPE_KEYS: dict[str, frozenset[str]] = {
    INTEGER: COMMON_KEYS | {"minimum", "maximum"},
    NUMBER: COMMON_KEYS | {"minimum", "maximum", "multipleOf"},
    STRING: COMMON_KEYS | {"maxLength", "enum", "pattern", "format"},
    BOOLEAN: COMMON_KEYS,
}


class EventsFileError(ValueError):
    """The events file cannot be served; the message says where and why."""


def camel_table(kind: str) -> str:
    """The default table of a kind: level_up -> LevelUpEvent."""
    return "".join(part[:1].upper() + part[1:] for part in kind.split("_")) + "Event"


def read_kinds(data: object, source: str) -> tuple[dict[str, DeclaredKind], bool]:
    """The kinds a parsed events file declares, and its `original_kinds`."""
    if not isinstance(data, Mapping):
        raise EventsFileError(f"{source}: must be an object with \"kinds\"")
    _no_other(data, TOP_KEYS, source)
    if "kinds" not in data or not isinstance(data["kinds"], Mapping):
        raise EventsFileError(f"{source}: \"kinds\" must be an object: kind name -> {{\"schema\": ...}}")
    original = data.get("original_kinds", True)
    if type(original) is not bool:
        raise EventsFileError(f"{source}: \"original_kinds\" must be true or false")
    kinds = {}
    tables: dict[str, str] = {}
    for name, body in data["kinds"].items():
        kind = _kind(name, body, source)
        other = tables.setdefault(kind.table.lower(), name)
        if other != name:
            raise EventsFileError(f"{source}: kinds {other!r} and {name!r} both name table {kind.table}")
        kinds[name] = kind
    return kinds, original


def _no_other(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise EventsFileError(
                f"{where}: keyword {key!r} is not supported (supported: {', '.join(sorted(allowed))})")


def _kind(name: object, body: object, source: str) -> DeclaredKind:
    where = f"{source}: kind {name!r}"
    if type(name) is not str or not KIND_NAME.fullmatch(name) or name == "batch":
        raise EventsFileError(f"{where}: a kind's name must be 1 to 64 of a-z 0-9 _, starting with a letter, "
                              "and not \"batch\"")
    if not isinstance(body, Mapping):
        raise EventsFileError(f"{where}: must be an object with \"schema\"")
    _no_other(body, KIND_KEYS, where)
    table = body.get("table", camel_table(name))
    if type(table) is not str or not IDENTIFIER.fullmatch(table):
        raise EventsFileError(f"{where}: \"table\" must be 1 to 64 of A-Z a-z 0-9 _, starting with a letter")
    if table.lower() in INTERNAL_TABLES:
        raise EventsFileError(f"{where}: table {table} is track's own")
    remote_ip = body.get("x-track-remote-ip", False)
    if type(remote_ip) is not bool:
        raise EventsFileError(f"{where}: \"x-track-remote-ip\" must be true or false")
    schema = body.get("schema")
    if not isinstance(schema, Mapping):
        raise EventsFileError(f"{where}: \"schema\" must be a JSON Schema object")
    _no_other(schema, SCHEMA_KEYS, where)
    if schema.get("type", "object") != "object":
        raise EventsFileError(f"{where}: the schema's \"type\" must be \"object\"")
    if schema.get("additionalProperties", False) is not False:
        raise EventsFileError(f"{where}: \"additionalProperties\" can only be false: unknown fields are refused")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping) or not properties:
        raise EventsFileError(f"{where}: \"properties\" must be an object naming at least one property")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(type(r) is str for r in required):
        raise EventsFileError(f"{where}: \"required\" must be a list of property names")
    for r in required:
        if r not in properties:
            raise EventsFileError(f"{where}: \"required\" names {r!r}, which is not among its properties")
    reserved = RESERVED | ({"RemoteIP"} if remote_ip else set())
    props = []
    for pname, pbody in properties.items():
        pwhere = f"{where}, property {pname!r}"
        if type(pname) is not str or not IDENTIFIER.fullmatch(pname):
            raise EventsFileError(f"{pwhere}: a property's name must be 1 to 64 of A-Z a-z 0-9 _, "
                                  "starting with a letter")
        if pname in reserved or pname.lower() in {r.lower() for r in reserved}:
            raise EventsFileError(f"{pwhere}: the name is track's own (reserved: {', '.join(sorted(reserved))})")
        props.append(_property(pname, pbody, pname in required, pwhere))
    lowered = [p.name.lower() for p in props]
    if len(set(lowered)) != len(lowered):
        raise EventsFileError(f"{where}: two properties differ only in case (a database column's name does not)")
    description = body.get("description", schema.get("description"))
    return DeclaredKind(name, table, tuple(props), remote_ip,
                        description if type(description) is str else None, dict(body), source)


def _property(name: str, body: object, required: bool, where: str) -> Property:
    if not isinstance(body, Mapping):
        raise EventsFileError(f"{where}: must be an object with \"type\"")
    kind = body.get("type")
    if kind not in TYPE_KEYS:
        raise EventsFileError(f"{where}: \"type\" must be one of {', '.join(TYPE_KEYS)}, not {kind!r}")
    _no_other(body, TYPE_KEYS[kind], where)
    message = body.get("x-track-message")
    if message is not None and (type(message) is not str or not message):
        raise EventsFileError(f"{where}: \"x-track-message\" must be a non-empty string")
    description = body.get("description")
    values: dict[str, Any] = {}
    if kind == STRING:
        values = _string_rules(body, where)
    elif kind in (INTEGER, NUMBER):
        values = _number_rules(kind, body, where)
    prop = Property(name, kind, required, message=message,
                    description=description if type(description) is str else None, **values)
    if "default" in body:
        if required:
            raise EventsFileError(f"{where}: keyword 'default' on a required property means nothing")
        prop = _with_default(prop, body["default"], where)
    return prop


def _string_rules(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if "maxLength" in body:
        n = body["maxLength"]
        if type(n) is not int or not 1 <= n <= MAX_STRING:
            raise EventsFileError(f"{where}: keyword 'maxLength' must be an integer from 1 to {MAX_STRING}")
        rules["max_length"] = n
    if "enum" in body:
        values = body["enum"]
        if (not isinstance(values, list) or not values or not all(type(v) is str for v in values)
                or len(set(values)) != len(values)):
            raise EventsFileError(f"{where}: keyword 'enum' must be a list of distinct strings")
        if "max_length" in rules and max(len(v) for v in values) > rules["max_length"]:
            raise EventsFileError(f"{where}: keyword 'enum' holds a value longer than maxLength")
        rules["enum"] = tuple(values)
    if "pattern" in body:
        pattern = body["pattern"]
        try:
            re.compile(ecma_regex(pattern) if type(pattern) is str else "(")
        except re.error as e:
            raise EventsFileError(f"{where}: keyword 'pattern' is not a regular expression: {e}") from None
        rules["pattern"] = pattern
    if "format" in body:
        if body["format"] != DATE_TIME:
            raise EventsFileError(f"{where}: keyword 'format': {body['format']!r} is not supported "
                                  f"(supported: {DATE_TIME})")
        if "enum" in rules or "pattern" in rules:
            raise EventsFileError(f"{where}: keyword 'format' cannot be combined with enum or pattern")
        rules["format"] = DATE_TIME
    return rules


def _decimal(value: object, keyword: str, where: str) -> Decimal:
    if type(value) is bool or not isinstance(value, (int, float, Decimal, str)):
        raise EventsFileError(f"{where}: keyword {keyword!r} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise EventsFileError(f"{where}: keyword {keyword!r} must be a number") from None
    if not number.is_finite():
        raise EventsFileError(f"{where}: keyword {keyword!r} must be a finite number")
    return number


def _number_rules(kind: str, body: Mapping[str, Any], where: str) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for keyword in ("minimum", "maximum"):
        if keyword in body:
            number = _decimal(body[keyword], keyword, where)
            if kind == INTEGER:
                if number != number.to_integral_value():
                    raise EventsFileError(f"{where}: keyword {keyword!r} of an integer must be whole")
                if not INT64[0] <= number <= INT64[1]:
                    raise EventsFileError(f"{where}: keyword {keyword!r} is past the 64-bit range")
                rules[keyword] = int(number)
            else:
                rules[keyword] = number
    if "multipleOf" in body:
        step = _decimal(body["multipleOf"], "multipleOf", where)
        exponent = step.normalize().as_tuple().exponent
        if type(exponent) is not int or step.normalize() != Decimal(1).scaleb(exponent) \
                or not -MAX_SCALE <= exponent <= 0:
            raise EventsFileError(f"{where}: keyword 'multipleOf' must be a power of ten from 1 to 1e-{MAX_SCALE} "
                                  "(it sets the decimal places stored), like 0.01")
        rules["multiple_of"] = step.normalize()
    low, high = rules.get("minimum"), rules.get("maximum")
    if low is not None and high is not None and low > high:
        raise EventsFileError(f"{where}: 'minimum' is greater than 'maximum'")
    if kind == NUMBER:
        prop = Property("", NUMBER, False, **rules)
        whole = PRECISION - prop.scale
        for bound in (low, high):
            if bound is not None and len(str(abs(int(bound)))) > whole:
                raise EventsFileError(f"{where}: a bound needs more than the {whole} digits before the decimal "
                                      f"point that DECIMAL({PRECISION},{prop.scale}) holds")
    return rules


def _with_default(prop: Property, value: object, where: str) -> Property:
    """`prop` with its default, which must itself be a value the rules take."""
    problem = _default_problem(prop, value)
    if problem:
        raise EventsFileError(f"{where}: keyword 'default' {problem}")
    return dataclasses.replace(prop, has_default=True, default=value)


def _default_problem(prop: Property, value: object) -> str:
    if prop.type == BOOLEAN:
        return "" if type(value) is bool else "must be true or false"
    if prop.type == INTEGER:
        low, high = prop.int_range
        return "" if type(value) is int and low <= value <= high else f"must be an integer from {low} to {high}"
    if prop.type == NUMBER:
        if type(value) is bool or not isinstance(value, (int, float, Decimal, str)):
            return "must be a number"
        number = Decimal(str(value))
        if (prop.minimum is not None and number < prop.minimum) or (
                prop.maximum is not None and number > prop.maximum):
            return "is outside minimum/maximum"
        return "" if number == number.quantize(Decimal(1).scaleb(-prop.scale)) else "has too many decimal places"
    if type(value) is not str or len(value) > prop.length:
        return f"must be a string of at most {prop.length} characters"
    if prop.enum is not None and value not in prop.enum:
        return "must be one of the enum's values"
    if prop.pattern is not None and not re.search(ecma_regex(prop.pattern), value):
        return "must match the pattern"
    return "must not be given for a date-time" if prop.format == DATE_TIME else ""


def ecma_regex(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern as Python's re reads it: `$` outside
    a class ends the text (Python's would also match before a final newline)."""
    out, in_class, escaped = [], False, False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == "]":
            in_class = False
            out.append(ch)
        elif ch == "$" and not in_class:
            out.append(r"\Z")
        else:
            out.append(ch)
    return "".join(out)
