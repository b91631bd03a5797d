"""The types every layer shares: rows, what became of them, and why.

This module imports nothing of track, so any module may import it and no
import of it can close a cycle.  A row travels from the HTTP edge through
the pipeline to storage; what storage reports back (an Outcome per row, or
one of the exceptions below for the whole write) travels the other way and
becomes the HTTP answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

# One event's column values, in its Kind's column order.
Row = tuple[Any, ...]


class Verdict(enum.Enum):
    """What a failed write means for the requests waiting on it (the
    dialect decides; nothing else relabels a failure)."""

    OUTAGE = "the database cannot take writes now"  # spool, or 503
    REFUSED = "this row cannot be stored"  # 400 for that request alone
    BUG = "a failure nobody expected"  # 500, logged, nothing acknowledged


@dataclass(frozen=True)
class Refusal:
    """Why the database refused one row, as the client will see it:
    `column` is "" when the database's message names none."""

    column: str
    reason: str
    detail: str = field(default="", compare=False)  # the database's own message


class Unavailable(Exception):
    """The database (and the spool) cannot take the write now; nothing of it
    was stored, so the client may retry (503)."""


class InternalError(Exception):
    """A failure nobody expected (a bug, an unknown database error): the
    requests get a 500, nothing is acknowledged, and the database is not
    taken for down.  Logged once, with its traceback, where it happened."""


class Overloaded(Exception):
    """Too many events are waiting for the database; the client should retry."""


class Refused(Exception):
    """The database refused this event's row; `refusal` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.column}: {refusal.reason}")
        self.refusal = refusal


# A refused row of a batch request: (group, row within it, why).
BatchRefusal = tuple[int, int, Refusal]

# Per row: None (stored), Refusal (refused: the client's value),
# Unavailable (not stored: try again) or InternalError (not stored: a bug).
Outcome = list["Refusal | Unavailable | InternalError | None"]


@dataclass(frozen=True)
class Statement:
    """INSERT ... VALUES <row>[, <row>...] <on duplicate MessageID: nothing>."""

    prefix: str
    row: str
    suffix: str

    @property
    def one(self) -> str:
        return self.prefix + self.row + self.suffix


@dataclass(frozen=True)
class Column:
    """One column of an event table, as the schema creates it."""

    name: str
    type: str = ""
    nullable: bool = False
    default: str | None = None
    primary_key: bool = False


@dataclass
class Backoff:
    """Delays that double from `first` up to `most`, for anything retried
    while something is away (the database, the spool's disk)."""

    first: float = 0.5
    most: float = 10.0
    current: float = 0.0

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long."""
        delay = self.current or self.first
        self.current = min(delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self.current = 0.0
