"""The live field tables: one per event kind, refitted when a database
first appears after start-up (its columns may be wider than the defaults).

Everything that holds the tables sees the same dict, changed in place; what
is derived from them (the OpenAPI document) subscribes, and is rebuilt
through the one callback `refit` makes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from track.fields.kinds import Kind

Subscriber = Callable[[Mapping[str, Kind]], None]


class KindTables(dict[str, Kind]):
    """Event kind -> its field table, with subscribers told of every refit."""

    def __init__(self, tables: Mapping[str, Kind]) -> None:
        super().__init__(tables)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(tables)` after every refit."""
        self._subscribers.append(subscriber)

    def refit(self, fresh: Mapping[str, Kind]) -> None:
        """The field limits are now `fresh`: change them, tell every subscriber."""
        self.update(fresh)
        for subscriber in self._subscribers:
            subscriber(self)
