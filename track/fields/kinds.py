"""The kinds served when no events file says otherwise: the original four,
compiled from the file shipped in the package (track/events/original.json).

The tables themselves, and parse_event, live in track.fields.event; they
are imported from here too, as they always were.
"""

from __future__ import annotations

from track.events.files import original_kinds
from track.fields.compile import compile_kinds
from track.fields.event import Field as Field
from track.fields.event import InvalidEvent as InvalidEvent
from track.fields.event import Kind as Kind
from track.fields.event import parse_event as parse_event

KINDS: dict[str, Kind] = compile_kinds(original_kinds())
