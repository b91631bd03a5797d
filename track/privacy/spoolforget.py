"""Removing one ProfileID's events from a spool directory and its dead
letters, safely against a crash and against a running collector.

A collector holds an exclusive flock on `<spool-dir>/lock` while it runs;
forget takes the same lock (non-blocking) on every spool directory before
touching anything, and refuses (SpoolInUse) while another process has it.

Each segment holding the ID is rewritten beside itself (`NNN.spool.forget`,
a name the spool never reads), fsync'd, and renamed over the original, so
a crash leaves either the old segment or the new one, never a mix.  Its
replay progress (how many leading records are already stored) is lowered
first, by the removed records among them: a crash between the two steps
only replays some stored events again, which their MessageIDs make
harmless.  The dead letters are rewritten the same way (temporary file,
fsync, rename).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from track.spool.deadletters import DIRECTORY as DEAD_LETTER_DIRECTORY
from track.spool.deadletters import EVENTS_FILE, DeadLetters
from track.spool.disk import fsync_dir
from track.spool.lock import DirectoryLock, SpoolLocked
from track.spool.records import RECORD_MARK, SEGMENT_MAGIC, V1_COLUMNS, parse_segment
from track.spool.segments import _count_path, _progress_path, replayed_records

_SUFFIX = ".spool"
_TEMPORARY = ".forget"


class SpoolInUse(Exception):
    """Another process (a running collector) holds the spool's lock."""


@dataclass
class Removed:
    """What was removed from the spool directories."""

    spool_events: int = 0
    segments_rewritten: int = 0
    dead_letters: int = 0
    directories: list[str] = field(default_factory=list)


def spool_directories(root: str) -> list[str]:
    """The spool directory and, for `--workers`, each worker's."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no spool directory {root}")
    found = [root]
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith("worker-") and os.path.isdir(path):
            found.append(path)
    return found


def lock(directory: str) -> DirectoryLock:
    """Hold `directory`'s lock, the one a running collector holds
    (track/spool/lock.py), or raise SpoolInUse naming its holder."""
    try:
        return DirectoryLock(directory).acquire()
    except SpoolLocked as e:
        raise SpoolInUse(directory, str(e)) from None


def matches(payload: bytes, profile_id: int) -> bool:
    """Whether a spool record (either format) is an event of `profile_id`."""
    try:
        data = json.loads(payload)
    except ValueError:
        return False
    if isinstance(data, list) and len(data) == 2 and isinstance(data[1], list):
        names = V1_COLUMNS.get(data[0], ())
        value = dict(zip(names, data[1], strict=False)).get("ProfileID")
    elif isinstance(data, dict) and isinstance(data.get("columns"), dict):
        value = data["columns"].get("ProfileID")
    else:
        return False
    return _same_id(value, profile_id)


def _same_id(value: object, profile_id: int) -> bool:
    return value is not None and not isinstance(value, bool) and str(value).strip() == str(profile_id)


def _frame(payload: bytes, v2: bool) -> bytes:
    if v2:
        return struct.pack(">4sII", RECORD_MARK, len(payload), zlib.crc32(payload)) + payload
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _segments(directory: str) -> Iterator[str]:
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith(_SUFFIX + _TEMPORARY):
            os.unlink(path)  # left by a forget that crashed before its rename: the original stands
        elif name.endswith(_SUFFIX):
            yield path


def forget_in_segment(path: str, profile_id: int) -> int:
    """Rewrite one segment without `profile_id`'s events; how many went."""
    with open(path, "rb") as f:
        data = f.read()
    v2 = data.startswith(SEGMENT_MAGIC)
    segment = parse_segment(data)
    done = replayed_records(path)
    kept: list[bytes] = []
    removed = removed_done = 0
    for index, payload in enumerate(segment.payloads):
        if matches(payload, profile_id):
            removed += 1
            removed_done += index < done
        else:
            kept.append(payload)
    if not removed:
        return 0
    directory = os.path.dirname(path)
    # Damaged records go where a replay would put them (the same name, so
    # doing it again after a crash writes the same file).
    letters = DeadLetters(directory)
    for offset, raw in segment.corrupt:
        letters.keep_corrupt(path, offset, raw)
    new = (SEGMENT_MAGIC if v2 else b"") + b"".join(_frame(p, v2) for p in kept)
    temporary = path + _TEMPORARY
    _write_file(temporary, new)
    if removed_done:
        _write_file(_progress_path(path), b"%020d\n" % (done - removed_done))
    os.replace(temporary, path)
    fsync_dir(directory)
    try:  # counted again at the collector's next start
        os.unlink(_count_path(path))
    except FileNotFoundError:
        pass
    return removed


def forget_in_dead_letters(directory: str, profile_id: int) -> int:
    """Rewrite the dead letters without `profile_id`'s; how many went."""
    path = os.path.join(directory, DEAD_LETTER_DIRECTORY, EVENTS_FILE)
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if not _letter_matches(line, profile_id)]
    if len(kept) == len(lines):
        return 0
    temporary = path + _TEMPORARY
    _write_file(temporary, b"".join(kept))
    os.replace(temporary, path)
    fsync_dir(os.path.dirname(path))
    return len(lines) - len(kept)


def _letter_matches(line: bytes, profile_id: int) -> bool:
    try:
        letter = json.loads(line)
    except ValueError:
        return False
    if not isinstance(letter, dict):
        return False
    fields = letter.get("fields")
    if isinstance(fields, dict):
        return _same_id(fields.get("ProfileID"), profile_id)
    record = letter.get("record")  # a record no release could read: its JSON, if any
    return isinstance(record, str) and matches(record.encode("utf-8", "replace"), profile_id)


def forget_in_spool(root: str, profile_id: int) -> Removed:
    """Lock every spool directory under `root`, then remove the ID's events
    from each one's segments and dead letters.  Raises SpoolInUse before
    changing anything if a collector holds one of them."""
    directories = spool_directories(root)
    held: list[DirectoryLock] = []
    try:
        for directory in directories:
            held.append(lock(directory))
        removed = Removed(directories=directories)
        for directory in directories:
            for path in list(_segments(directory)):
                n = forget_in_segment(path, profile_id)
                removed.spool_events += n
                removed.segments_rewritten += n > 0
            removed.dead_letters += forget_in_dead_letters(directory, profile_id)
        return removed
    finally:
        for held_lock in held:
            held_lock.release()
