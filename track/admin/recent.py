"""The latest accepted events and rejected requests, for the live page.

Recording is on the request path, so it keeps references only (the row the
request already built, the answer's bytes) in bounded deques: an append,
no copy, no encoding.  The work of turning them into JSON happens in
`snapshot`, when someone looks.

Both lists are always kept (with --admin-http): an append costs about
0.15 us (timeit), against about 165 us of CPU per event, and a page that
opens shows the latest events at once, including one posted the moment
before.  `live` (the page looked within WATCH_SECONDS) only decides
whether a worker spends time writing its lists out for the parent.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping
from itertools import islice
from typing import Any

from track.fields.kinds import Kind
from track.web.eventpath import path_kind

KEEP = 1000  # entries of each list, per process (--admin-keep)
SHOWN = 100  # entries of each list the page shows unless asked for more
WATCH_SECONDS = 5.0  # the page counts as open this long after its last look
BODY_BYTES = 1024  # of a rejected request's body


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def kind_of(path: bytes) -> str | None:
    """The event kind an API path names (`session`, ..., `batch`, or
    `other`), else None: the label it is counted under in /metrics."""
    return path_kind(path)


class Recent:
    """Two bounded lists, newest last; `version` counts what was added.
    The live page's EventTap (track.seams)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._accepted: deque[tuple[float, str, Any]] = deque(maxlen=keep)
        self._rejected: deque[dict[str, Any]] = deque(maxlen=keep)
        self.version = 0
        self.live = False  # the page is open: workers write their lists out
        self._until = 0.0

    def watch(self, now: float) -> None:
        """The page looked: a worker writes its lists out while it keeps looking."""
        if not self.live:
            self.version += 1  # written out at the next report, even if nothing new came
            self.live = True
        self._until = now + WATCH_SECONDS

    def tick(self, now: float) -> None:
        """Off the request path, now and then: stop writing the lists out
        once the page has not looked for WATCH_SECONDS."""
        if self.live and now >= self._until:
            self.live = False

    def accepted(self, kind: str, row: Any) -> None:
        """On the hot path: a 201 for one row of `kind`."""
        self._accepted.append((time.time(), kind, row))
        self.version += 1

    def rejected(self, request: Any, body: bytes, client: str | None) -> None:
        """A 4xx/5xx answer to an event request: what the client sent and
        what it was told (`client` as it is stored, after --trusted-proxy).
        Not on the hot path (a rejection is rare, and an overloaded server
        sheds load long before this is what costs)."""
        kind = kind_of(request.path)
        if kind is None:
            return
        content = request.content
        sent = b""
        if content is not None:
            try:
                content.seek(0)
                sent = content.read(BODY_BYTES)
            except (OSError, ValueError):
                pass
        agent = request.getHeader(b"user-agent")
        self._rejected.append({
            "time": time.time(),
            "kind": kind,
            "status": request.code,
            "body": body,
            "client": client,
            "user_agent": agent.decode("utf-8", "replace") if isinstance(agent, bytes) else agent,
            "request": sent,
        })
        self.version += 1

    def refused_early(self, kind: str, status: int, payload: Mapping[str, Any], client: Any) -> None:
        """A request answered on its connection before it reached a route
        (413 by Content-Length, 408, 431): no headers or body to show.
        Every one is shown (and counted), under `other` if its path names
        no kind."""
        self._rejected.append({
            "time": time.time(), "kind": kind, "status": status, "body": json.dumps(payload).encode(),
            "client": getattr(client, "host", None) or str(client), "user_agent": None, "request": b"",
        })
        self.version += 1

    def held(self) -> dict[str, int]:
        return {"accepted": len(self._accepted), "rejected": len(self._rejected)}

    def snapshot(self, kinds: Mapping[str, Kind],
                 limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """Both lists as JSON-ready dicts, newest first (the newest `limit`
        of each: only those are turned into dicts)."""
        accepted = []
        for when, name, row in islice(reversed(self._accepted), limit):
            kind = kinds.get(name)
            columns = kind.columns if kind is not None else tuple(f"{i}" for i in range(len(row)))
            fields = {column: _plain(value) for column, value in zip(columns, row, strict=False)}
            accepted.append({"time": when, "kind": name, "message_id": fields.pop("MessageID", None),
                             "fields": fields})
        rejected = []
        for entry in islice(reversed(self._rejected), limit):
            try:
                error: Any = json.loads(entry["body"])
            except ValueError:
                error = entry["body"].decode("utf-8", "replace")
            rejected.append({**entry, "body": None, "error": error,
                             "request": entry["request"].decode("utf-8", "replace")})
            del rejected[-1]["body"]
        return {"accepted": accepted, "rejected": rejected}
