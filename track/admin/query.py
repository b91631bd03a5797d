"""What the page's search box, its filters and `GET /feed/events` ask of
the latest events the listener holds: a kind, accepted or rejected, a text,
a time.  Answered over everything held, not only the rows on a screen."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

LISTS = ("accepted", "rejected")


class BadQuery(ValueError):
    """A parameter the query API cannot use: answered 400, naming it."""


def _values(value: Any) -> Iterator[str]:
    """Every scalar of a JSON value, as text (keys left out: a search for
    "Region" should not match every event)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)
    elif value is not None:
        yield str(value).lower()


def _fields(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """An entry's named fields, for `name=value`: an accepted event's
    fields and MessageID; a rejected request's error fields."""
    fields = dict(entry.get("fields") or {})
    if entry.get("message_id") is not None:
        fields["MessageID"] = entry["message_id"]
    return fields


@dataclass(frozen=True)
class Query:
    kind: str | None = None
    status: str | None = None  # "accepted", "rejected" or None for both
    q: str | None = None
    since: float | None = None

    @classmethod
    def from_args(cls, args: Mapping[bytes, list[bytes]]) -> Query:
        def one(name: str) -> str | None:
            values = args.get(name.encode())
            text = values[-1].decode("utf-8", "replace").strip() if values else ""
            return text or None

        status = one("status")
        if status not in (None, *LISTS):
            raise BadQuery("status must be accepted or rejected")
        since_text = one("since")
        since = None
        if since_text is not None:
            try:
                since = float(since_text)
            except ValueError:
                raise BadQuery("since must be a Unix time in seconds") from None
            if not math.isfinite(since):
                raise BadQuery("since must be a Unix time in seconds")
        return cls(kind=one("kind"), status=status, q=one("q"), since=since)

    @property
    def filtered(self) -> bool:
        return (self.kind, self.q, self.since) != (None, None, None)

    def matches(self, entry: Mapping[str, Any]) -> bool:
        if self.kind is not None and entry.get("kind") != self.kind:
            return False
        if self.since is not None and not entry.get("time", 0) > self.since:
            return False
        if self.q is None:
            return True
        name, eq, wanted = self.q.partition("=")
        if eq and name and name in _fields(entry):  # ProfileID=7: that field, exactly
            value = _fields(entry)[name]
            return ("" if value is None else str(value)).lower() == wanted.lower()
        needle = self.q.lower()
        return any(needle in text for text in _values(entry))

    def apply(self, recent: Mapping[str, Any], limit: int | None) -> dict[str, Any]:
        """Each list's matching entries (newest first, at most `limit`),
        how many matched and how many are held.  `recent` is a View's
        answer: all it holds when this query filters, else at least `limit`."""
        result: dict[str, Any] = {}
        matched: dict[str, int] = {}
        held = recent.get("held", {})
        for name in LISTS:
            wanted = self.status in (None, name)
            entries = recent.get(name, []) if wanted else []
            if self.filtered:
                chosen = [e for e in entries if self.matches(e)]
                matched[name] = len(chosen)
            else:
                chosen = entries
                matched[name] = held.get(name, len(entries)) if wanted else 0
            result[name] = chosen if limit is None else chosen[:limit]
        result["matched"] = matched
        result["held"] = dict(held)
        return result
