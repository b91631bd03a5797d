"""Reading an events file (JSON, or YAML by its name) into the kinds served:
the shipped original four, then the file's, which add to them or replace
them (or stand alone with "original_kinds": false)."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from typing import Any

from track.events.declared import DeclaredKind
from track.events.subset import EventsFileError, read_kinds

ORIGINAL = "original.json"


def original_text() -> str:
    """The shipped file of the original four kinds, as it is on disk."""
    return resources.files("track.events").joinpath(ORIGINAL).read_text(encoding="utf-8")


def original_kinds() -> dict[str, DeclaredKind]:
    kinds, _ = read_kinds(json.loads(original_text(), parse_float=Decimal), f"track/events/{ORIGINAL}")
    return kinds


def parse_text(text: str, source: str) -> Any:
    """The file's document: YAML for a .yaml or .yml name, else JSON."""
    if source.endswith((".yaml", ".yml")):
        import yaml  # only for YAML files

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise EventsFileError(f"{source}: not YAML: {e}") from None
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError as e:
        raise EventsFileError(f"{source}: not JSON: {e}") from None


def read_file(path: str) -> tuple[dict[str, DeclaredKind], bool]:
    """A file's own kinds and its `original_kinds`."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise EventsFileError(f"{path}: cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise EventsFileError(f"{path}: not UTF-8: {e}") from None
    return read_kinds(parse_text(text, path), path)


def served_kinds(path: str | None) -> dict[str, DeclaredKind]:
    """The kinds to serve: the original four unless the file says
    otherwise, with the file's kinds added or put in their place."""
    if path is None:
        return original_kinds()
    declared, keep_original = read_file(path)
    kinds = original_kinds() if keep_original else {}
    kinds.update(declared)
    if not kinds:
        raise EventsFileError(f"{path}: declares no kinds, and \"original_kinds\" is false: nothing to serve")
    tables: dict[str, str] = {}
    for name, kind in kinds.items():
        other = tables.setdefault(kind.table.lower(), name)
        if other != name:
            raise EventsFileError(f"{path}: kind {name!r} names table {kind.table}, which kind {other!r} "
                                  "(an original kind) already has")
    return kinds
