"""The live field tables: one per event kind served.

Refitted when a database first appears after start-up (its columns may be
wider than the defaults), and replaced as a whole when the events file is
read again (SIGHUP): a kind added is served from the next request on, a
kind removed is a 404 from then on.

Everything that holds the tables sees the same dict, changed in place on
the reactor thread; what is derived from them (the OpenAPI document, the
saved column limits) subscribes, and is rebuilt through the one callback
every change makes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from track.fields.event import Kind

Subscriber = Callable[[Mapping[str, Kind]], None]
# Every kind name any table of this process has served: the label values a
# request's path may be counted under (track.web.eventpath).  Only grows,
# and only from declarations, never from what a client sends.
EVER_SERVED: set[str] = set()


class KindTables(dict[str, Kind]):
    """Event kind -> its field table, with subscribers told of every change."""

    def __init__(self, tables: Mapping[str, Kind]) -> None:
        super().__init__(tables)
        EVER_SERVED.update(self)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(tables)` after every refit or replacement."""
        self._subscribers.append(subscriber)

    def refit(self, fresh: Mapping[str, Kind]) -> None:
        """The field limits of the kinds in `fresh` are now these: change
        them (other kinds stay as they are), tell every subscriber."""
        self.update(fresh)
        self._tell()

    def serve(self, fresh: Mapping[str, Kind]) -> None:
        """The kinds served are now exactly `fresh`, in its order (which the
        404's list, the batch's "type" message and the document follow)."""
        if list(self) != list(fresh):
            self.clear()
        self.update(fresh)
        self._tell()

    def _tell(self) -> None:
        EVER_SERVED.update(self)
        for subscriber in self._subscribers:
            subscriber(self)
