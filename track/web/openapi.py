"""The OpenAPI 3 document, generated from the same field tables the validator
uses, so the published contract and the checks cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from track import __version__
from track.fields.kinds import EventType, Field
from track.fields.values import (
    INT32_MAX,
    INT32_MIN,
    MONEY_MAX_INTEGER_DIGITS,
    MONEY_PLACES,
)

INT_PATTERN = "^-?[0-9]+$"
MONEY_PATTERN = rf"^-?[0-9]{{1,{MONEY_MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MONEY_PLACES}}})?$"
REGION_PATTERN = "^[A-Za-z]{2,16}$"
BOOL_WORDS = ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "fields": {
            "type": "object",
            "description": "Each bad, missing or unknown field, with what is wrong with it.",
            "additionalProperties": {"type": "string"},
        },
    },
}


def _form_schema(f: Field) -> dict[str, Any]:
    """What a field looks like as a form value (always text)."""
    if f.type == "string":
        schema: dict[str, Any] = {"type": "string", "maxLength": f.max_length}
        if f.required:
            schema["minLength"] = 1  # an empty required value counts as missing
        return schema
    if f.type == "int":
        return {"type": "string", "pattern": INT_PATTERN, "description": f"integer {INT32_MIN}..{INT32_MAX}"}
    if f.type == "bool":
        return {"type": "string", "enum": BOOL_WORDS}
    if f.type == "money":
        return {"type": "string", "pattern": MONEY_PATTERN}
    return {"type": "string", "pattern": REGION_PATTERN}


def _json_schema(f: Field) -> dict[str, Any]:
    """What a field looks like in a JSON body: native types, or the form text."""
    text = _form_schema(f)
    if f.type == "int":
        return {"oneOf": [{"type": "integer", "minimum": INT32_MIN, "maximum": INT32_MAX}, text]}
    if f.type == "bool":
        return {"oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}, text]}
    if f.type == "money":
        bound = 10.0**MONEY_MAX_INTEGER_DIGITS
        number = {"type": "number", "multipleOf": 10.0**-MONEY_PLACES,
                  "minimum": -bound, "exclusiveMinimum": True,
                  "maximum": bound, "exclusiveMaximum": True}
        return {"oneOf": [number, text]}
    return text


def _object(event: EventType, field_schema: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in event.fields if f.required],
        "properties": {f.name: field_schema(f) for f in event.fields},
    }


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return response


def openapi_document(
    event_types: Mapping[str, EventType], prefix: str, max_body: int
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind, event in event_types.items():
        paths[f"{prefix}/{kind}/"] = {
            "post": {
                "operationId": f"track_{kind}",
                "summary": f"Record one {kind} event ({event.table})",
                "requestBody": {
                    "required": True,
                    "description": f"At most {max_body} bytes (after gzip/deflate decoding).",
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _object(event, _form_schema)},
                        "application/json": {"schema": _object(event, _json_schema)},
                    },
                },
                "responses": {
                    "201": {
                        "description": "Stored: the event's row is committed. Empty body.",
                        "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}},
                    },
                    "400": _error("Invalid event: every bad, missing or unknown field is named."),
                    "408": _error("The request was not received within the request timeout."),
                    "413": _error("The body is larger than the limit."),
                    "415": _error("The body is neither a form nor JSON, or not UTF-8, or an unknown encoding."),
                    "429": _error("Not stored: this client is over --rate-limit. Retry after Retry-After.",
                                  retry=True),
                    "503": _error("Not stored: the database cannot take it now. Retry.", retry=True),
                },
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "track",
            "version": __version__,
            "description": "Analytics event collector. 201 means the event is committed.",
        },
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }
