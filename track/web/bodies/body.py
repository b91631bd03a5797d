"""Turning a request body into a field mapping: forms, JSON (also sent as
text/plain, as sendBeacon does) and multipart/form-data; UTF-8 only.

The result maps field names to str (form values, JSON strings), int, bool,
None, JSONNumber (a JSON number with a fraction or exponent, kept as text),
or a list/dict (which no field accepts).  Anything that cannot be read
exactly is a BodyError carrying the status code the client should see.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from track.fields.values import JSONNumber
from track.web.bodies.bodyerror import BodyError as BodyError  # raised here, caught by callers
from track.web.bodies.formdata import parse_form_data

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# What navigator.sendBeacon(url, string) sends: read as JSON.  It is a
# "simple" content type, so a browser sends it without a preflight.
TEXT = "text/plain"
FORM_DATA = "multipart/form-data"
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


_MEDIA_TYPES: dict[bytes, tuple[str, str | None]] = {}
_MEDIA_TYPES_MAX = 256  # clients send a handful of distinct headers


def media_type(header: bytes | None) -> tuple[str, str | None]:
    """('type/subtype', charset or None) from a Content-Type header."""
    if not header:
        return "", None
    parsed = _MEDIA_TYPES.get(header)
    if parsed is None:
        parsed = _parse_media_type(header)
        if len(_MEDIA_TYPES) < _MEDIA_TYPES_MAX:
            _MEDIA_TYPES[header] = parsed
    return parsed


def _parse_media_type(header: bytes) -> tuple[str, str | None]:
    text = header.decode("latin-1")
    kind, *params = text.split(";")
    charset = None
    for p in params:
        name, _, value = p.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.strip().lower(), charset


def read_fields(content_type: bytes | None, body: bytes, query: bytes = b"") -> dict[str, Any]:
    """Fields from the query string and the body, which may not repeat a name."""
    kind, charset = media_type(content_type)
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise BodyError(415, f"unsupported charset {charset!r}: only UTF-8 is accepted")
    fields = parse_form(query, "query string") if query else {}
    if kind == JSON or kind.endswith("+json") or (kind == TEXT and body):
        more = parse_json(body)
    elif kind in (FORM, "") or not body:
        # No Content-Type at all is read as a form, as old clients send it.
        more = parse_form(body, "body") if body else {}
    elif kind == FORM_DATA:
        assert content_type is not None  # kind came from it
        more = parse_form_data(content_type, body)
    else:
        raise BodyError(
            415,
            f"unsupported Content-Type {kind!r}: send {FORM}, {JSON}, {FORM_DATA} or {TEXT} (read as JSON)",
        )
    if not fields:
        return more
    for name, value in more.items():
        if name in fields:
            raise BodyError(400, "invalid event", fields={name: "given more than once"})
        fields[name] = value
    return fields


_DECODERS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,  # zlib-wrapped, as HTTP defines it
}


def decode_content(encoding: bytes | None, body: bytes, limit: int) -> bytes:
    """Undo Content-Encoding (gzip or deflate), never inflating past `limit`
    bytes: a compression bomb costs at most `limit` bytes of memory."""
    if not encoding:
        return body
    name = encoding.decode("latin-1").strip().lower()
    if name == "identity":
        return body
    if name not in _DECODERS:
        raise BodyError(415, f"unsupported Content-Encoding {name!r}: use gzip or deflate")
    wbits = _DECODERS[name]
    if name == "deflate" and body[:1] and body[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate, as some clients send it
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise BodyError(400, f"the {name} body is corrupt") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise BodyError(413, "body too large once decompressed", max_bytes=limit)
    if not inflater.eof or inflater.unused_data:
        raise BodyError(400, f"the {name} body is truncated or has trailing data")
    return data


def _unquote(raw: bytes) -> bytes:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"+", b" "))


def parse_form(data: bytes, where: str) -> dict[str, str]:
    """application/x-www-form-urlencoded, strictly: bad escapes, bad UTF-8 and
    repeated names are errors rather than guesses."""
    if b"%" not in data and b"+" not in data:
        return _parse_plain_form(data, where)
    fields: dict[str, str] = {}
    for pair in data.split(b"&"):
        if not pair:
            continue
        if _BAD_ESCAPE.search(pair):
            raise BodyError(400, f"malformed percent-escape in the {where}")
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = _unquote(raw_name).decode("utf-8")
            value = _unquote(raw_value).decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError(400, f"the {where} is not valid UTF-8") from None
        if name in fields:
            raise BodyError(400, "invalid event", fields={name: "given more than once"})
        fields[name] = value
    return fields


def _parse_plain_form(data: bytes, where: str) -> dict[str, str]:
    """The common case, nothing escaped: one decode, then plain splits."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, f"the {where} is not valid UTF-8") from None
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            if name in fields:
                raise BodyError(400, "invalid event", fields={name: "given more than once"})
            fields[name] = value
    return fields


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):  # the common case, checked in C
        return result
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise BodyError(400, "invalid event", fields={name: "given more than once"})
        seen.add(name)
    raise AssertionError("unreachable")


# The decoder json.loads(text, **the options below) would make, made once:
# json.loads makes a new one (in Python) per call, which NDJSON pays per line.
JSON_DECODER = json.JSONDecoder(parse_float=JSONNumber, parse_constant=_reject_constant,
                                object_pairs_hook=_reject_duplicates)


def parse_json(data: bytes) -> dict[str, Any]:
    """One JSON object, UTF-8, with numbers kept exact and NaN refused."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "the body is not valid UTF-8") from None
    try:
        value = json.loads(
            text,
            parse_float=JSONNumber,
            parse_constant=_reject_constant,
            object_pairs_hook=_reject_duplicates,
        )
    except BodyError:
        raise
    except (ValueError, RecursionError) as e:
        raise BodyError(400, f"malformed JSON: {e}") from None
    if not isinstance(value, dict):
        raise BodyError(400, "the JSON body must be one object of event fields")
    return value
