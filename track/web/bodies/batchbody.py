"""Batch request bodies: `{"events": [{"type": ..., ...}, ...]}` as JSON (or
as text/plain, what `navigator.sendBeacon` sends), or NDJSON with one such
event object per line.

Only the envelope is read here; each event is then checked by the same
field tables as a single event, so the two endpoints cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from track.web.bodies.body import JSON, JSON_DECODER, TEXT, BodyError, media_type, parse_json

NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines")
ANONYMOUS = "Anonymous"  # the envelope's Track-Anonymous: a sendBeacon sets no headers
DEFAULT_MAX_BATCH = 1000
DEFAULT_MAX_BATCH_BODY = 1024 * 1024


def read_batch(content_type: bytes | None, body: bytes, max_events: int) -> tuple[list[Any], dict[str, Any]]:
    """The list of event objects (not yet validated) and the JSON envelope's
    other fields (its "SentAt" and "Anonymous", if given), or a BodyError."""
    envelope: dict[str, Any] = {}
    kind, charset = media_type(content_type)
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise BodyError(415, f"unsupported charset {charset!r}: only UTF-8 is accepted")
    if kind in NDJSON:
        events = _well_formed_lines(body, max_events)
        if events is None:
            events = _lines(body, max_events)
    elif kind in (JSON, TEXT) or kind.endswith("+json"):  # TEXT: a sendBeacon
        envelope = parse_json(body)
        events = envelope.pop("events", None)
        if not isinstance(events, list) or not set(envelope) <= {"SentAt", ANONYMOUS}:
            raise BodyError(400, 'the JSON body must be {"events": [...]}')
        if type(envelope.get(ANONYMOUS, False)) is not bool:
            raise BodyError(400, f'"{ANONYMOUS}" must be true or false')
    else:
        raise BodyError(415, f"unsupported Content-Type {kind!r}: send {JSON}, {NDJSON[0]} or {TEXT} (read as JSON)")
    if not events:
        raise BodyError(400, "the batch holds no events")
    if len(events) > max_events:
        raise BodyError(413, f"more than {max_events} events in one batch", max_events=max_events)
    return events, envelope


def _lines(body: bytes, max_events: int) -> list[Any]:
    """An NDJSON body's event objects line by line (up to one past
    `max_events`), or the BodyError naming the first bad line."""
    events: list[Any] = []
    for number, line in enumerate(body.split(b"\n"), 1):
        if line.strip():
            try:
                events.append(parse_json(line))
            except BodyError as e:
                raise BodyError(400, f"line {number}: {e.message}") from None
            if len(events) > max_events:
                break
    return events


# An object, a comma, the next object (whitespace between): what a body of
# one object per line does not hold outside its strings.
_SIDE_BY_SIDE = re.compile(r"\}[ \t\r\n]*,[ \t\r\n]*\{")
_JSON_SPACE = " \t\r\n"
_DICTS = {dict}
# (value, where it ends) of the JSON value at an index: what json.loads
# calls, without its checks around it (done below instead).
_scan: Callable[[str, int], tuple[Any, int]] = JSON_DECODER.scan_once  # type: ignore[attr-defined]


def _well_formed_lines(body: bytes, max_events: int) -> list[Any] | None:
    """The event objects of an NDJSON body whose every line is one JSON
    object (at most `max_events` of them; blank lines only before the first
    or after the last), read as parse_json reads each line, but as one JSON
    array, its newlines made commas.  None for any other body, which `_lines`
    then reads and says what is wrong with, exactly as before.

    Why the array is the lines: each comma between two of its objects is a
    newline of the body or a comma of the body between an object and the
    next, and a body without _SIDE_BY_SIDE has none of those; so when the
    array has as many objects as the body has lines, it has one per line."""
    try:
        text = body.decode("utf-8").strip(_JSON_SPACE)  # the lines as parse_json decodes each: "\n" is one byte
    except UnicodeDecodeError:
        return None
    if not text:
        return []
    lines = text.count("\n") + 1
    if lines > max_events or _SIDE_BY_SIDE.search(text):
        return None
    array = "[" + text.replace("\n", ",") + "]"
    try:
        value, end = _scan(array, 0)
    except Exception:  # malformed, a duplicate field, NaN, too deep...: _lines says which
        return None
    events: list[Any] = value
    if end != len(array) or len(events) != lines or set(map(type, events)) != _DICTS:
        return None
    return events
