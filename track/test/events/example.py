"""A declared kind using every rule of the subset, for the tests of what
the server makes of it (validation, routes, document, client, storage)."""

from __future__ import annotations

import json
from typing import Any

from track.events.files import served_kinds
from track.fields.compile import compile_kinds
from track.fields.event import Kind

BIG = 9007199254740991  # past 32 bits: a bigint column
# The issue's example file, exactly: one kind with six properties.
ISSUE_EXAMPLE: dict[str, Any] = {
    "kinds": {
        "level_up": {
            "table": "LevelUpEvent",
            "schema": {
                "type": "object",
                "required": ["PlayerID", "Level"],
                "properties": {
                    "PlayerID": {"type": "integer"},
                    "Level": {"type": "integer", "minimum": 1, "maximum": 100},
                    "Class": {"type": "string", "enum": ["warrior", "mage", "rogue"]},
                    "Zone": {"type": "string", "maxLength": 64},
                    "Reward": {"type": "number", "multipleOf": 0.0001},
                    "Hardcore": {"type": "boolean"},
                },
            },
        }
    }
}
LEVEL_UP: dict[str, Any] = {
    "kinds": {
        "level_up": {
            "description": "A player reached a new level.",
            "schema": {
                "type": "object",
                "required": ["PlayerID", "Level"],
                "properties": {
                    "PlayerID": {"type": "integer", "minimum": 0, "maximum": BIG},
                    "Level": {"type": "integer", "minimum": 1, "maximum": 100, "description": "The new level."},
                    "Class": {"type": "string", "enum": ["warrior", "mage", "rogue"]},
                    "Zone": {"type": "string", "maxLength": 64},
                    "Reward": {"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 1000000},
                    "Hardcore": {"type": "boolean", "default": False},
                    "At": {"type": "string", "format": "date-time"},
                    "Guild": {"type": "string", "maxLength": 12, "pattern": "^[A-Z]{3}-[0-9]+$"},
                    "Title": {"type": "string", "maxLength": 20, "pattern": "^[a-z ]+$",
                              "x-track-message": "must be lower-case letters and spaces"},
                },
            },
        }
    }
}
# A complete level_up as JSON, and the row it makes (before RemoteIP/MessageID/Created).
GOOD: dict[str, Any] = {"PlayerID": BIG, "Level": 7, "Class": "mage", "Zone": "Zoné 1", "Reward": "12.5",
                        "Hardcore": True, "At": "2026-12-07T16:04:05.25+01:00", "Guild": "ABC-12",
                        "Title": "grand master"}
# Every property bad, with the exact words of the 400, in the file's order.
BAD: dict[str, Any] = {"PlayerID": -1, "Level": 101, "Class": "bard", "Zone": "z" * 65, "Reward": "1.005",
                       "Hardcore": "yes", "At": "2026-12-07 16:04", "Guild": "abc-1", "Title": "Grand"}
BAD_WORDS = {
    "PlayerID": f"must be an integer between 0 and {BIG}",
    "Level": "must be an integer between 1 and 100",
    "Class": 'must be one of "warrior", "mage", "rogue"',
    "Zone": "must be at most 64 characters",
    "Reward": "must have at most 2 digits after the decimal point",
    "Hardcore": "must be a boolean: true or false (also 1, 0, t, f, TRUE, FALSE)",
    "At": "must be an RFC 3339 date-time with a zone, like 2026-12-07T15:04:05Z",
    "Guild": "must match ^[A-Z]{3}-[0-9]+$",
    "Title": "must be lower-case letters and spaces",
}
def write_events_file(path: str, document: dict[str, Any] = LEVEL_UP, **top: Any) -> str:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({**document, **top}, f)
    return path


def level_up_kinds(path: str, document: dict[str, Any] = LEVEL_UP, **top: Any) -> dict[str, Kind]:
    """The compiled kinds a server with this file serves."""
    return compile_kinds(served_kinds(write_events_file(path, document, **top)))
