"""Which event kind a request's path names, as a bounded label: the
metrics and the admin page count a refusal under it, and a client must not
be able to invent label values (`/api/1.0/track/<anything>`): a name counts
only once the events file declared it (track.fields.tables.EVER_SERVED)."""

from __future__ import annotations

from track.fields.kinds import KINDS
from track.fields.tables import EVER_SERVED

API_PREFIX = b"/api/1.0/track/"
EVER_SERVED.update(KINDS)  # the original four: counted by name even before any table is made
OTHER = "other"  # an API path naming no kind, or a request whose path was never read


def path_name(path: bytes) -> str | None:
    """The name after the API prefix, as sent; None outside the API."""
    if not path.startswith(API_PREFIX):
        return None
    return path[len(API_PREFIX):].split(b"?", 1)[0].strip(b"/").decode("ascii", "replace")


def path_kind(path: bytes) -> str | None:
    """`session`, ..., any declared kind, `batch`, or OTHER for an unknown
    one under the API prefix; None for a path outside the API (not an event
    request)."""
    name = path_name(path)
    if name is None:
        return None
    return name if name in EVER_SERVED or name == "batch" else OTHER
