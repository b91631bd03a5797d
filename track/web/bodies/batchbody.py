"""Batch request bodies: `{"events": [{"type": ..., ...}, ...]}` as JSON (or
as text/plain, what `navigator.sendBeacon` sends), or NDJSON with one such
event object per line.

Only the envelope is read here; each event is then checked by the same
field tables as a single event, so the two endpoints cannot disagree.
"""

from __future__ import annotations

from typing import Any

from track.web.bodies.body import JSON, TEXT, BodyError, media_type, parse_json

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
        events: list[Any] = []
        for number, line in enumerate(body.split(b"\n"), 1):
            if line.strip():
                try:
                    events.append(parse_json(line))
                except BodyError as e:
                    raise BodyError(400, f"line {number}: {e.message}") from None
                if len(events) > max_events:
                    break
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
