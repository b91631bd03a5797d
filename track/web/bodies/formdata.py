"""`multipart/form-data` bodies (a browser's `FormData`, in a `fetch` or a
`sendBeacon`) as fields, read with the `multipart` library (the parser
Bottle and treq use), strictly: text parts only, UTF-8 only, no name twice.
"""

from __future__ import annotations

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from track.web.bodies.bodyerror import BodyError

MAX_PARTS = 256  # no event has near as many fields; unknown ones are still named


def parse_form_data(content_type: bytes, body: bytes) -> dict[str, str]:
    """The text parts of a multipart/form-data body, by name."""
    _, options = parse_options_header(content_type.decode("latin-1"))
    boundary = options.get("boundary")
    if not boundary:
        raise BodyError(400, "multipart/form-data without a boundary")
    fields: dict[str, str] = {}
    segment: MultipartSegment | None = None
    chunks: list[bytes] = []
    try:
        with PushMultipartParser(boundary, len(body), max_segment_count=MAX_PARTS, strict=True) as parser:
            for event in parser.parse(body):
                if isinstance(event, MultipartSegment):
                    segment, chunks = event, []
                elif event is not None:
                    chunks.append(bytes(event))
                elif segment is not None:
                    _add(fields, segment, b"".join(chunks))
    except MultipartError as e:
        raise BodyError(400, f"malformed multipart/form-data body: {e}") from None
    return fields


def _add(fields: dict[str, str], segment: MultipartSegment, data: bytes) -> None:
    name = segment.name or ""
    if segment.filename is not None:
        raise BodyError(400, "invalid event", fields={name: "must be a text field, not a file"})
    if segment.charset is not None and segment.charset.lower() not in ("utf-8", "utf8"):
        raise BodyError(415, f"unsupported charset {segment.charset!r}: only UTF-8 is accepted")
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "the multipart/form-data body is not valid UTF-8") from None
    if name in fields:
        raise BodyError(400, "invalid event", fields={name: "given more than once"})
    fields[name] = value
