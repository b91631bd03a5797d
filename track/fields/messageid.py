"""Server-assigned MessageIDs: unique like uuid4(), far cheaper per event."""

from __future__ import annotations

import itertools
import os
import uuid

_id_prefix = ""
_id_counter = itertools.count()
_fork_hook = False


def _new_id_prefix() -> str:
    """74 fresh random bits, drawn at the first ID of each process (a
    forked child draws its own), so two processes never share a prefix."""
    global _id_prefix, _fork_hook
    if not _fork_hook:
        os.register_at_fork(after_in_child=_forget_prefix)
        _fork_hook = True
    _id_prefix = str(uuid.uuid4())[:24]
    return _id_prefix


def _forget_prefix() -> None:
    global _id_prefix
    _id_prefix = ""


def new_message_id() -> str:
    """A version-4-format UUID: 74 random bits drawn once per process, then a
    counter.  Unique like uuid4() and far cheaper (no urandom, and no getpid,
    per event)."""
    return f"{_id_prefix or _new_id_prefix()}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"
