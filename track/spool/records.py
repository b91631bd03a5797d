"""Spool records: how an acknowledged event is written to disk and read back.

Format 2 (this release): a segment starts with SEGMENT_MAGIC; each record is
`RECORD_MARK | length | crc32 | payload`, the payload a JSON object naming
its event kind and every column by name, so a later release with other
field tables still reads it.  JSON is written ASCII-only, and the mark holds
a byte (0xFF) that ASCII never has, so after a damaged record the reader
finds the next one by searching for the mark and checking its checksum.

Format 1 (releases up to 2026-11-28): no segment header, records
`length | crc32 | payload`, the payload `[kind, [values...]]` in the column
order of that release, kept below as V1_COLUMNS.  Read, never written.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from track.fields.kinds import Kind

SEGMENT_MAGIC = b"track-spool 2\n"
RECORD_MARK = b"\xffTRK"
_V2_HEADER = struct.Struct(">4sII")  # mark, payload length, crc32 of payload
_V1_HEADER = struct.Struct(">II")  # payload length, crc32 of payload
MAX_PAYLOAD = 64 * 1024 * 1024  # no event comes near; a larger length is damage

# Column order of format 1 records, frozen as that release wrote them.
V1_COLUMNS: dict[str, tuple[str, ...]] = {
    "session": ("Region", "SessionID", "RemoteIP", "SessionType", "Message", "ProfileID",
                "MessageID", "Created"),
    "user": ("ProfileID", "Region", "Referrer", "Message", "MessageID", "RemoteIP", "Created"),
    "item": ("ProfileID", "Region", "ItemName", "ItemType", "IsUGC", "PriceGold", "PriceSilver",
             "MessageID", "RemoteIP", "Created"),
    "purchase": ("ProfileID", "Region", "Currency", "GrossAmount", "NetAmount", "PaymentProvider",
                 "Product", "MessageID", "Created"),
}


class RecordError(ValueError):
    """A whole, checksummed record this release cannot turn into a row."""


class KindGone(RecordError):
    """A whole record of a kind no longer served, or naming a property its
    kind no longer declares (the events file changed while it waited): the
    message is the dead letter's reason, and the record's columns its event."""

    def __init__(self, reason: str, kind: str, columns: Mapping[str, Any]) -> None:
        super().__init__(reason)
        self.kind = kind
        self.columns = dict(columns)


def _plain(value: Any) -> Any:
    """A column value as JSON holds it."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def columns_of(kind: Kind, row: Sequence[Any]) -> dict[str, Any]:
    """A row as {column: JSON value}, NULLs left out."""
    return {c: _plain(v) for c, v in zip(kind.columns, row, strict=True) if v is not None}


def encode(kind: Kind, row: Sequence[Any]) -> bytes:
    """One event as a format 2 record."""
    payload = json.dumps({"type": kind.name, "columns": columns_of(kind, row)},
                         separators=(",", ":")).encode("ascii")
    return _V2_HEADER.pack(RECORD_MARK, len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes, kinds: Mapping[str, Kind]) -> tuple[Kind, tuple[Any, ...]]:
    """A record's payload (either format) as a row of today's field tables.

    Raises RecordError when it names an unknown kind or column, lacks a
    required one, or is malformed in any other way (a checksummed record a
    bug wrote, or one edited by hand): such a record goes to the dead
    letters, never away, and never stops the replay of the others."""
    try:
        return _decode(payload, kinds)
    except RecordError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, ArithmeticError) as e:
        raise RecordError(f"malformed record: {type(e).__name__}: {e}") from None


def _decode(payload: bytes, kinds: Mapping[str, Kind]) -> tuple[Kind, tuple[Any, ...]]:
    try:
        data = json.loads(payload)
    except ValueError as e:
        raise RecordError(f"not JSON: {e}") from None
    if isinstance(data, list):  # format 1
        name, values = data
        names = V1_COLUMNS.get(name, ())
        if len(names) != len(values):
            raise RecordError(f"a format 1 {name!r} record of {len(values)} values")
        columns = dict(zip(names, values, strict=True))
    else:
        name, columns = data.get("type"), dict(data.get("columns", {}))
    kind = kinds.get(name) if isinstance(name, str) else None
    if kind is None:
        if isinstance(name, str) and name:
            raise KindGone(f"kind {name!r} is no longer served", name, columns)
        raise RecordError(f"unknown event kind {name!r}")
    return kind, _row(kind, columns)


def _row(kind: Kind, record: dict[str, Any]) -> tuple[Any, ...]:
    columns = dict(record)
    row: list[Any] = []
    for f in kind.fields:
        value = columns.pop(f.name, None)
        if value is None:
            if f.required:
                raise RecordError(f"{kind.name} record lacks {f.name}")
            value = f.default() if f.default else None
        elif f.type == "money":
            value = Decimal(value)
        elif f.type == "datetime":
            value = datetime.fromisoformat(value)
        row.append(value)
    if kind.remote_ip_column:
        row.append(columns.pop("RemoteIP", ""))
    created = columns.pop("Created", None)
    if created is None:
        raise RecordError(f"{kind.name} record lacks Created")
    row.append(datetime.fromisoformat(created))
    if columns:
        raise KindGone(f"kind {kind.name!r} no longer declares {', '.join(sorted(columns))}", kind.name, record)
    return tuple(row)


@dataclass
class Segment:
    """What one segment file holds: whole records in order, the byte ranges
    that failed their checks between them, and a torn tail: bytes after the
    last whole record (a crash cut an append short; kept all the same)."""

    payloads: list[bytes] = field(default_factory=list)
    corrupt: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, bytes)
    torn_at: int | None = None
    tail: bytes = b""


def parse_segment(data: bytes) -> Segment:
    """Every whole record of a segment file's bytes, either format."""
    if data.startswith(SEGMENT_MAGIC):
        return _parse(data, len(SEGMENT_MAGIC), _v2_record_at, _v2_next)
    return _parse(data, 0, _v1_record_at, _v1_next)


def _v2_record_at(data: bytes, pos: int) -> int:
    """The end of a whole, checksummed format 2 record at `pos`, or -1."""
    if len(data) - pos < _V2_HEADER.size:
        return -1
    mark, length, crc = _V2_HEADER.unpack_from(data, pos)
    end = pos + _V2_HEADER.size + length
    if mark != RECORD_MARK or length > MAX_PAYLOAD or end > len(data):
        return -1
    return end if zlib.crc32(data[pos + _V2_HEADER.size:end]) == crc else -1


def _v2_next(data: bytes, pos: int) -> int:
    """Where the next record could start: the next mark."""
    return data.find(RECORD_MARK, pos + 1)


def _v1_record_at(data: bytes, pos: int) -> int:
    if len(data) - pos < _V1_HEADER.size:
        return -1
    length, crc = _V1_HEADER.unpack_from(data, pos)
    end = pos + _V1_HEADER.size + length
    if end > len(data) or data[pos + _V1_HEADER.size:pos + _V1_HEADER.size + 2] != b'["':
        return -1
    return end if zlib.crc32(data[pos + _V1_HEADER.size:end]) == crc else -1


def _v1_next(data: bytes, pos: int) -> int:
    """Format 1 has no mark: every payload starts with `["`, just after a header."""
    found = data.find(b'["', pos + 1 + _V1_HEADER.size)
    return found - _V1_HEADER.size if found >= 0 else -1


def _parse(data: bytes, pos: int, record_at: Any, next_candidate: Any) -> Segment:
    segment = Segment()
    header = _V2_HEADER.size if record_at is _v2_record_at else _V1_HEADER.size
    while pos < len(data):
        end = record_at(data, pos)
        if end >= 0:
            segment.payloads.append(data[pos + header:end])
            pos = end
            continue
        # Damage: look for the next whole record.  None after it means a
        # tail torn by a crash (never acknowledged); one means the bytes in
        # between were a record damaged in place.
        resume = next_candidate(data, pos)
        while resume >= 0 and record_at(data, resume) < 0:
            resume = next_candidate(data, resume)
        if resume < 0:
            segment.torn_at, segment.tail = pos, data[pos:]
            break
        segment.corrupt.append((pos, data[pos:resume]))
        pos = resume
    return segment
