"""One field's schema in the OpenAPI document: as a form value (always
text) and in a JSON body (native types, or the form's text).

Each says exactly what the field's parser takes (track.fields), so a value
the document allows is stored and one it forbids is refused.  Where a rule
cannot be said in JSON Schema, `x-track-message` gives the words the
server's 400 uses for every refusal of the field, and the Python client
and track.js say the same.  The original four's fields are published as
they always were.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from track.fields.checks import DECIMAL_PRECISION, bounds_message, enum_message, plain
from track.fields.event import Constant, Field
from track.fields.rfc3339 import DATE_TIME_MESSAGE, RFC3339_BODY
from track.fields.values import INT32_MAX, INT32_MIN, MESSAGE_ID_MAX
from track.web.textpatterns import INT_BODY, anchored, decimal_body, int_body

REGION_BODY = "[A-Za-z]{2,16}"
MESSAGE_ID_BODY = f"[A-Za-z0-9._:-]{{1,{MESSAGE_ID_MAX}}}"
BOOL_WORDS = ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"]
BMP_ONLY = "No characters outside the Basic Multilingual Plane (such as emoji)."


def form_schema(f: Field) -> dict[str, Any]:
    """What a field looks like as a form value (always text)."""
    schema = _text(f)
    if isinstance(f.default, Constant):
        value = f.default.value
        schema["default"] = json.dumps(value) if type(value) is bool else plain(value) if isinstance(
            value, (int, Decimal)) else value
    return _annotated(f, schema)


def json_schema(f: Field) -> dict[str, Any]:
    """What a field looks like in a JSON body: native types, or the form text."""
    schema = _typed(f, _text(f))
    if isinstance(f.default, Constant):
        value = f.default.value
        schema["default"] = _json_number(value) if isinstance(value, Decimal) else value
    return _annotated(f, schema)


def _annotated(f: Field, schema: dict[str, Any]) -> dict[str, Any]:
    """The declaration's description, and x-track-message where the words of
    a refusal are the field's own."""
    message = f.message or (enum_message(f.enum) if f.type == "enum" and f.enum
                            else DATE_TIME_MESSAGE if f.type == "datetime" else None)
    if message:
        schema["x-track-message"] = message
    if f.description:
        old = schema.get("description")
        schema["description"] = f"{f.description} {old}" if old else f.description
    return schema


def _text(f: Field) -> dict[str, Any]:
    optional = not f.required
    if f.type == "string":
        schema: dict[str, Any] = {"type": "string", "maxLength": f.max_length}
        if f.required:
            schema["minLength"] = 1  # an empty required value counts as missing
        if f.bmp_only:  # a 3-byte utf8 column
            schema["x-bmp-only"] = True
            schema["description"] = BMP_ONLY
        return schema
    if f.type == "int":
        low, high = f.int_range
        body = INT_BODY if (low, high) == (INT32_MIN, INT32_MAX) else int_body(low, high)
        return {"type": "string", "pattern": anchored(body, optional), "description": f"integer {low}..{high}"}
    if f.type == "bool":
        return {"type": "string", "enum": BOOL_WORDS + [""] * optional}
    if f.type == "money":
        body = decimal_body(f.scale, DECIMAL_PRECISION - f.scale)
        schema = {"type": "string", "pattern": anchored(body, optional)}
        if f.low is not None or f.high is not None:  # bounds a pattern cannot say
            schema["description"] = bounds_message(f.low, f.high).removeprefix("must be ")
        return schema
    if f.type == "messageid":
        return {"type": "string", "pattern": anchored(MESSAGE_ID_BODY, optional), "maxLength": MESSAGE_ID_MAX,
                "description": "Idempotency key: a retry with the same MessageID stores nothing new. "
                               "Empty or not given: the server assigns a UUID."}
    if f.type == "region":
        return {"type": "string", "pattern": anchored(REGION_BODY, optional)}
    if f.type == "enum":
        assert f.enum is not None
        return {"type": "string", "enum": [*f.enum, *[""] * optional]}
    if f.type == "pattern":
        assert f.pattern is not None
        # Unanchored, as JSON Schema reads a pattern; "^$|" takes "" (not given).
        schema = {"type": "string", "maxLength": f.max_length,
                  "pattern": f.pattern if f.required else f"^$|{f.pattern}"}
        if f.required:
            schema["minLength"] = 1
        return schema
    assert f.type == "datetime", f.type
    return {"type": "string", "format": "date-time", "pattern": anchored(RFC3339_BODY, optional)}


def _typed(f: Field, text: dict[str, Any]) -> dict[str, Any]:
    if f.type == "int":
        low, high = f.int_range
        return {"oneOf": [{"type": "integer", "minimum": low, "maximum": high}, text]}
    if f.type == "bool":
        return {"oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}, text]}
    if f.type == "money":
        bound = 10 ** (DECIMAL_PRECISION - f.scale)
        number: dict[str, Any] = {"type": "number", "multipleOf": 10.0**-f.scale}
        if f.low is None:
            number.update({"minimum": -bound, "exclusiveMinimum": True})
        else:
            number["minimum"] = _json_number(f.low)
        if f.high is None:
            number.update({"maximum": bound, "exclusiveMaximum": True})
        else:
            number["maximum"] = _json_number(f.high)
        places = f"at most {f.scale} digits" if f.scale else "no digits"
        number["description"] = f"written as the text form is: no exponent, {places} after the point"
        return {"oneOf": [number, text]}
    return text


def _json_number(value: int | Decimal) -> int | float:
    """A bound or default as JSON writes it: 100, not 100.0; 0.5 as 0.5."""
    return int(value) if value == int(value) else float(value)
