"""The OpenAPI 3 document, generated from the same field tables the validator
uses, so the published contract and the checks cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from track import __version__
from track.fields.eventtime import EPOCH_MS_BODY, EPOCH_MS_DIGITS, RFC3339_BODY, SENT_AT, TIMESTAMP
from track.fields.kinds import Kind
from track.web.fieldschemas import MESSAGE_ID_BODY, form_schema, json_schema
from track.web.textpatterns import anchored

TIME_BODY = f"{EPOCH_MS_BODY}|{RFC3339_BODY}"
TIME_DESCRIPTION = ("RFC 3339 with a zone (2026-12-07T15:04:05Z, 2026-12-07T15:04:05.123+01:00) or epoch "
                    "milliseconds (digits). The server also refuses a time (corrected by SentAt) further than "
                    "--max-clock-skew in the future or --max-event-age in the past.")


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a human."},
        "fields": {
            "type": "object",
            "description": "Each bad, missing or unknown field, with what is wrong with it.",
            "additionalProperties": {"type": "string"},
        },
        "detail": {"type": "string", "description": "The database's own message, when it refused the row."},
        "retry_after": {"type": "integer", "description": "503: seconds to wait, as Retry-After says."},
        "max_bytes": {"type": "integer", "description": "413: the body limit."},
        "max_events": {"type": "integer", "description": "413: the most events a batch may hold."},
        "timeout_seconds": {"type": "number", "description": "408: the request timeout."},
        "origin": {"type": "string", "description": "403: the Origin that --cors-origin does not allow."},
        "events": {
            "type": "array",
            "description": "A refused batch: each event that was refused, by its index in the batch.",
            "items": {"$ref": "#/components/schemas/RefusedEvent"},
        },
    },
}
REFUSED_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["index"],
    "properties": {
        "index": {"type": "integer", "minimum": 0, "description": "The event's place in the batch, from 0."},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "error": {"type": "string"},
        "detail": {"type": "string"},
    },
}
MESSAGE_ID_HEADER: dict[str, Any] = {
    "description": "The event's MessageID (the client's, or one the server assigned). Sent with every "
                   "answer once the event was read, 503 included: retrying with it never stores twice.",
    "schema": {"type": "string", "pattern": anchored(MESSAGE_ID_BODY, False)},
}
TIME_TEXT: dict[str, Any] = {"type": "string", "pattern": anchored(TIME_BODY, True), "description": TIME_DESCRIPTION}
TIME_JSON: dict[str, Any] = {
    "oneOf": [{"type": "integer", "minimum": 0, "maximum": 10**EPOCH_MS_DIGITS - 1,
               "description": "epoch milliseconds"}, TIME_TEXT],
}
SENT_AT_PARAMETER: dict[str, Any] = {
    "name": "Track-Sent-At", "in": "header", "required": False,
    "description": "When the client sent the request, by its own clock: with an event's Timestamp, the "
                   "server stores Created = receive time - (SentAt - Timestamp), so a wrong client clock "
                   "does not move events. A batch may give it as the body's SentAt instead (not both).",
    "schema": TIME_TEXT,
}
RETRY_AFTER_HEADER: dict[str, Any] = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}


def _properties(kind: Kind, field_schema: Any, time_schema: dict[str, Any]) -> dict[str, Any]:
    return {**{f.name: field_schema(f) for f in kind.fields}, TIMESTAMP: time_schema}


def _object(kind: Kind, field_schema: Any) -> dict[str, Any]:
    """An event's fields, and its Timestamp: when it happened, by the client's clock."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in kind.fields if f.required],
        "properties": _properties(kind, field_schema, TIME_JSON if field_schema is json_schema else TIME_TEXT),
    }


def _error(description: str, retry: bool = False, message_id: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    headers = {}
    if message_id:
        headers["Track-Message-Id"] = {"$ref": "#/components/headers/Track-Message-Id"}
    if retry:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if headers:
        response["headers"] = headers
    return response


def _errors(body_limit: str, one: bool) -> dict[str, Any]:
    """The error answers both kinds of endpoint share."""
    return {
        "403": _error("The request's Origin is not one --cors-origin allows; nothing was stored."),
        "408": _error("The request was not received within the request timeout."),
        "413": _error(f"The body is larger than the limit ({body_limit})."),
        "415": _error("The body is not one of the media types above, not UTF-8, or has an unknown "
                      "Content-Encoding."),
        "429": _error("Not stored: this client is over --rate-limit. Retry after Retry-After.", retry=True),
        "500": _error("A failure nobody expected; nothing was acknowledged. Logged; retry later.",
                      message_id=one),
        "503": _error("Not stored: the database cannot take it now, or too many events are waiting. "
                      "Retry (with the same MessageIDs).", retry=True, message_id=one),
    }


def _single(name: str, kind: Kind, max_body: int) -> dict[str, Any]:
    form = {"schema": _object(kind, form_schema)}
    json_body = {"schema": _object(kind, json_schema)}
    described = {"description": kind.description} if kind.description else {}
    return {
        "post": {
            "operationId": f"track_{name}",
            "summary": f"Record one {name} event ({kind.table})",
            **described,
            "parameters": [SENT_AT_PARAMETER],
            "requestBody": {
                "required": True,
                "description": f"At most {max_body} bytes (after gzip/deflate decoding). Fields may also be "
                               "sent in the query string. text/plain is read as JSON (what "
                               "navigator.sendBeacon sends).",
                "content": {
                    "application/x-www-form-urlencoded": form,
                    "multipart/form-data": form,
                    "application/json": json_body,
                    "text/plain": json_body,
                },
            },
            "responses": {
                "201": {
                    "description": "Stored: the event's row is committed. Empty body.",
                    "headers": {"Track-Message-Id": {"$ref": "#/components/headers/Track-Message-Id"}},
                    "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}},
                },
                "400": _error("Invalid event: every bad, missing or unknown field is named (or the body "
                              "cannot be read, or the database refused the row).", message_id=True),
                **_errors(f"{max_body} bytes", one=True),
            },
        }
    }


def _typed(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A batch item: an event object that names its kind in `type`."""
    return {**schema, "required": ["type", *schema["required"]],
            "properties": {"type": {"type": "string", "enum": [kind]}, **schema["properties"]}}


def _batch(kinds: Mapping[str, Kind], max_events: int, max_batch_body: int) -> dict[str, Any]:
    names = list(kinds)
    items = {"oneOf": [_typed(name, _object(kind, json_schema)) for name, kind in kinds.items()]}
    envelope = {"schema": {"type": "object", "additionalProperties": False, "required": ["events"],
                           "properties": {"events": {"type": "array", "minItems": 1, "maxItems": max_events,
                                                     "items": items},
                                          SENT_AT: {**TIME_JSON, "description": "When the client sent the "
                                                    "batch (for a sendBeacon, which sets no headers); not "
                                                    "with the Track-Sent-At header."},
                                          "Anonymous": {"type": "boolean", "description": "true: no client "
                                                        "address is stored for any event of the batch, as with "
                                                        "the Track-Anonymous: 1 header (which a sendBeacon "
                                                        "cannot set)."}}}}
    return {
        "post": {
            "operationId": "track_batch",
            "parameters": [SENT_AT_PARAMETER],
            "summary": f"Record up to {max_events} events of any kinds ({', '.join(names)}), all or none",
            "requestBody": {
                "required": True,
                "description": f"At most {max_events} events and {max_batch_body} bytes (after decoding). "
                               '`{"events": [...]}` as JSON (or text/plain, read as JSON), or NDJSON: one '
                               "event object a line. Each event names its kind in `type`.",
                "content": {
                    "application/json": envelope,
                    "text/plain": envelope,
                    "application/x-ndjson": {"schema": {"type": "string",
                                                        "description": "One event object a line."}},
                },
            },
            "responses": {
                "201": {
                    "description": "Every event is stored (committed together).",
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["stored", "message_ids"],
                        "properties": {"stored": {"type": "integer"},
                                       "message_ids": {"type": "array", "items": {"type": "string"},
                                                       "description": "Each event's MessageID, in order."}},
                    }}},
                },
                "400": _error("Nothing was stored: `events` names each refused event by its index (drop "
                              "those, resend the rest), or the body cannot be read."),
                **_errors(f"{max_batch_body} bytes or {max_events} events", one=False),
            },
        }
    }


def openapi_document(
    kinds: Mapping[str, Kind], prefix: str, max_body: int,
    max_batch: int = 1000, max_batch_body: int = 1024 * 1024,
) -> dict[str, Any]:
    paths: dict[str, Any] = {f"{prefix}/{name}/": _single(name, kind, max_body)
                             for name, kind in kinds.items()}
    paths[f"{prefix}/batch/"] = _batch(kinds, max_batch, max_batch_body)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "track",
            "version": __version__,
            "description": "Analytics event collector. 201 means the event is committed.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, "RefusedEvent": REFUSED_EVENT_SCHEMA},
            "headers": {"Track-Message-Id": MESSAGE_ID_HEADER, "Retry-After": RETRY_AFTER_HEADER},
        },
    }
