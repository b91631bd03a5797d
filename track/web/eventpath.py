"""Which event kind a request's path names, as a bounded label: the
metrics and the admin page count a refusal under it, and a client must not
be able to invent label values (`/api/1.0/track/<anything>`)."""

from __future__ import annotations

from track.fields.kinds import KINDS

API_PREFIX = b"/api/1.0/track/"
PATH_KINDS = frozenset([*KINDS, "batch"])
OTHER = "other"  # an API path naming no kind, or a request whose path was never read


def path_kind(path: bytes) -> str | None:
    """`session`, ..., `batch`, or OTHER for an unknown one under the API
    prefix; None for a path outside the API (not an event request)."""
    if not path.startswith(API_PREFIX):
        return None
    name = path[len(API_PREFIX):].split(b"?", 1)[0].strip(b"/").decode("ascii", "replace")
    return name if name in PATH_KINDS else OTHER
