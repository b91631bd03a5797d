"""Dead letters: acknowledged events the database refused at replay.

A 201 promised the event would be kept, so an event that cannot be stored
(a trigger, a constraint, a column narrowed since, a kind no longer
served) is never dropped: it is
appended to `<spool-dir>/dead-letter/events.jsonl`, one JSON object a line
(type, MessageID, the client's fields, what the server filled in, the
database's error, when), fsync'd.  Bytes of a record that failed its
checksum are kept beside it as `corrupt-<segment>-<offset>.bin`.  An
operator fixes the cause and re-sends them with
`python -m track.spool resend SPOOL_DIR URL`.  Everything here blocks: it
runs on the spool's thread, or in that command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from track.fields.kinds import Kind
from track.spool.disk import append_exclusively, write_durably
from track.spool.records import columns_of

DIRECTORY = "dead-letter"
EVENTS_FILE = "events.jsonl"


def entry(kind: Kind | None, row: Sequence[Any] | None, error: str,
          record: bytes | None = None) -> dict[str, Any]:
    """One dead letter: the event as a client would send it again, the
    columns the server filled in, and why it could not be stored."""
    now = datetime.now(UTC).isoformat()
    if kind is None or row is None:
        return {"record": (record or b"").decode("ascii", "replace"), "error": error, "time": now}
    columns = columns_of(kind, row)
    client = {f.name for f in kind.fields}
    return {
        "type": kind.name,
        "MessageID": row[kind.message_id_index],
        "fields": {k: v for k, v in columns.items() if k in client},
        "received": {k: v for k, v in columns.items() if k not in client},
        "error": error,
        "time": now,
    }


# Columns of a record the server filled in, not the client: a letter keeps
# them apart, and resend passes RemoteIP on as X-Forwarded-For.
SERVER_FILLED = ("Created", "RemoteIP")


def gone_entry(kind: str, columns: Mapping[str, Any], error: str, record: bytes) -> dict[str, Any]:
    """The dead letter of a spooled event whose kind (or one of whose
    properties) is no longer served: the event as a client would send it
    again once a file declares it, and the record's bytes as they were."""
    return {
        "type": kind,
        "MessageID": columns.get("MessageID"),
        "fields": {k: v for k, v in columns.items() if k not in SERVER_FILLED},
        "received": {k: v for k, v in columns.items() if k in SERVER_FILLED},
        "error": error,
        "time": datetime.now(UTC).isoformat(),
        "record": record.decode("ascii", "replace"),
    }


class DeadLetters:
    """The dead-letter area of one spool directory."""

    def __init__(self, spool_directory: str) -> None:
        self.directory = os.path.join(spool_directory, DIRECTORY)
        self.path = os.path.join(self.directory, EVENTS_FILE)
        self._counted: tuple[int, int, int] = (0, 0, 0)  # (inode, size, lines) last counted
        # (events, corrupt bytes) as last counted: what /healthz and /metrics
        # read on the reactor thread, which never touches the files itself.
        self.counted: tuple[int, int] = (0, 0)

    def append(self, entries: Sequence[dict[str, Any]]) -> None:
        """Write and fsync `entries`; raises OSError (e.g. no space left)."""
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode()
        append_exclusively(self.path, data)  # beside a resend taking the file away
        self.count()

    def keep_corrupt(self, segment: str, offset: int, data: bytes) -> None:
        name = f"corrupt-{os.path.basename(segment).split('.')[0]}-{offset}.bin"
        write_durably(os.path.join(self.directory, name), data, "wb")
        self.count()

    def count(self) -> tuple[int, int]:
        """Count the dead letters and corrupt bytes again (blocking: on the
        spool's thread, or at start-up) into `counted`."""
        self.counted = (self.events(), self.corrupt_bytes())
        return self.counted

    def events(self) -> int:
        """Dead letters in the file now (recounted only when it changed:
        a resend may have taken them away)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return 0
        inode, size, lines = self._counted
        if (st.st_ino, st.st_size) != (inode, size):
            with open(self.path, "rb") as f:
                lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
            self._counted = (st.st_ino, st.st_size, lines)
        return lines

    def corrupt_bytes(self) -> int:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        return sum(os.path.getsize(os.path.join(self.directory, n))
                   for n in names if n.startswith("corrupt-"))
