"""Declared kinds (an events file, or the shipped original four) compiled
into the field tables the server checks events with.

Everything a declaration says becomes a Field whose parser is built here,
once: a property's type and rules pick the parser, so parse_event's loop
does the same small work for a declared kind as for an original one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from track.events.declared import BOOLEAN, DATE_TIME, INTEGER, NUMBER, STRING, DeclaredKind, Property
from track.events.subset import ecma_regex
from track.fields.event import MESSAGE_ID, Constant, Field, Kind

# The original's Region, as the shipped file declares it: the original's own
# check (the same rule, a regex fullmatch), published as it always was.
REGION_PATTERN = "^[A-Za-z]{2,16}$"
REGION_MESSAGE = "must be 2 to 16 letters A-Z or a-z"


def compile_kinds(declared: Mapping[str, DeclaredKind]) -> dict[str, Kind]:
    """Kind name -> its field table, in the declarations' order."""
    return {name: compile_kind(kind) for name, kind in declared.items()}


def compile_kind(declared: DeclaredKind) -> Kind:
    """The properties in the file's order, then MessageID (every kind's)."""
    fields = (*(compile_field(p) for p in declared.properties), MESSAGE_ID)
    return Kind(declared.name, declared.table, fields, declared.remote_ip, declared.description)


def compile_field(p: Property) -> Field:
    default = Constant(_default(p)) if p.has_default else None
    common: dict[str, Any] = {"default": default, "message": p.message, "description": p.description}
    if p.type == INTEGER:
        return Field(p.name, "int", p.required, low=p.minimum, high=p.maximum, **common)
    if p.type == NUMBER:
        return Field(p.name, "money", p.required, low=p.minimum, high=p.maximum, scale=p.scale, **common)
    if p.type == BOOLEAN:
        return Field(p.name, "bool", p.required, **common)
    assert p.type == STRING, p.type
    if p.format == DATE_TIME:
        return Field(p.name, "datetime", p.required, p.length, **common)
    if p.enum is not None:
        values = p.enum
        if p.pattern is not None:  # both rules: the values the pattern takes
            search = re.compile(ecma_regex(p.pattern), re.ASCII).search
            values = tuple(v for v in values if search(v))
        return Field(p.name, "enum", p.required, p.length, enum=values, **common)
    if p.pattern == REGION_PATTERN and p.message == REGION_MESSAGE and p.length >= 16:
        return Field(p.name, "region", p.required, **{**common, "message": None})
    if p.pattern is not None:
        return Field(p.name, "pattern", p.required, p.length, pattern=p.pattern, **common)
    return Field(p.name, "string", p.required, p.length, **common)


def _default(p: Property) -> Any:
    """A declared default as a parsed value would be (a number at its scale)."""
    if p.type == NUMBER:
        return Decimal(str(p.default)).quantize(Decimal(1).scaleb(-p.scale))
    return p.default
