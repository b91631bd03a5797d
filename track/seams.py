"""The seams between layers, named: what one side may ask of the other.

- `Health`: what /healthz and /readyz ask (the Writer's Health view in one
  process, SharedHealth in a worker of --workers).
- `EventTap`: where the HTTP layer reports each answer to an event request,
  for the live page (track.admin.recent.Recent with --admin-http);
  `NO_TAP` when nothing listens, so callers never check for None.
- `InsertTogether`: how a batch request's rows are stored all together or
  not at all (the Writer's insert_atomic), called by the Batcher so a batch
  counts against the same bound as single events.

Only Protocols and the no-op tap: importing this module has no effect, and
at run time it imports nothing of track but track.types, so it closes no
cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from track.types import BatchRefusal, Row

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.web.iweb import IRequest

    from track.fields.kinds import Kind


class Health(Protocol):
    def health(self) -> dict[str, Any]:
        """The full /healthz answer (the admin listener's; the public one filters it)."""

    def ready(self) -> bool:
        """Can an event be accepted now (/readyz)."""


class EventTap(Protocol):
    def accepted(self, kind: str, row: Row) -> None:
        """On the hot path: a 201 for one row of `kind`."""

    def rejected(self, request: IRequest, body: bytes, client: str | None) -> None:
        """A 4xx/5xx answer `body` to a request; `client` as it would be stored."""

    def refused_early(self, kind: str, status: int, payload: Mapping[str, Any], client: Any) -> None:
        """A request answered on its connection before it reached a route."""


class NoTap:
    """The tap when no live page listens: every report costs one call."""

    def accepted(self, kind: str, row: Row) -> None:
        pass

    def rejected(self, request: IRequest, body: bytes, client: str | None) -> None:
        pass

    def refused_early(self, kind: str, status: int, payload: Mapping[str, Any], client: Any) -> None:
        pass


NO_TAP: EventTap = NoTap()


class InsertTogether(Protocol):
    def __call__(self, groups: Sequence[tuple[Kind, Sequence[Row]]], /) -> Deferred[list[BatchRefusal] | None]:
        """Store every group's rows in one transaction (or one spool
        append); the refused rows as (group, row, why), or None."""
