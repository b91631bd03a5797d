"""The admin listener's routes: the live page (its HTML, CSS and script
are files of this package, served from here: nothing from another host),
the JSON feed it polls, and /metrics, /healthz and /readyz for the whole
service."""

# Twisted's IRequest declares its methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from track.admin.history import SAMPLE_SECONDS, WINDOWS, History
from track.admin.query import BadQuery, Query
from track.admin.recent import SHOWN
from track.admin.views import BATCH_REQUESTS, View, by_reason, uptime
from track.metrics import CONTENT_TYPE

POLL_MS = 1000
SETTLE_SECONDS = 2.0  # workers report twice a second
_STATIC = {
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/admin.css": ("admin.css", b"text/css; charset=utf-8"),
    "/admin.js": ("admin.js", b"text/javascript; charset=utf-8"),
    "/auth.js": ("auth.js", b"text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", b"image/svg+xml"),
}


def _static(name: str) -> bytes:
    return resources.files("track.admin").joinpath("static", name).read_bytes()


class AdminApp:
    app = Klein()

    def __init__(self, view: View, history: History, clock: Any) -> None:
        self.view = view
        self.history = history
        self.clock = clock
        self.files = {path: (_static(name), kind) for path, (name, kind) in _STATIC.items()}

    def resource(self) -> Any:
        return self.app.resource()

    def _json(self, request: IRequest, code: int, value: Any) -> bytes:
        body = json.dumps(value).encode("ascii")
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return body

    @app.route("/", methods=["GET"])
    @app.route("/admin.css", methods=["GET"])
    @app.route("/admin.js", methods=["GET"])
    @app.route("/auth.js", methods=["GET"])
    @app.route("/favicon.svg", methods=["GET"])
    def static(self, request: IRequest) -> bytes:
        body, kind = self.files[request.path.decode("ascii")]
        request.setHeader(b"Content-Type", kind)
        # Content-Security-Policy, nosniff and the rest: track/admin/guard.py, on every answer.
        request.setHeader(b"Cache-Control", b"no-cache")
        return body

    def _query(self, request: IRequest) -> tuple[Query, int | None, int] | bytes:
        """The query, `limit` (None: not given) and the graphs' window; or
        the 400 that names what cannot be used."""
        try:
            return Query.from_args(request.args), _limit(request.args), _window(request.args)
        except BadQuery as e:
            return self._json(request, 400, {"error": str(e)})

    async def _events(self, query: Query, limit: int | None) -> dict[str, Any]:
        """What matches, over everything held: a filter reads every entry,
        the plain page only the newest `limit` of each list.  With workers,
        a question they were not answering yet waits (up to SETTLE_SECONDS)
        for each to write out what it holds."""
        asked = None if query.filtered else limit
        for _ in range(int(SETTLE_SECONDS / 0.05)):
            if self.view.settled(asked):
                break
            await deferLater(self.clock, 0.05, lambda: None)
        return query.apply(self.view.recent(asked), limit)

    @app.route("/feed", methods=["GET"])
    def feed(self, request: IRequest) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self._feed(request))

    async def _feed(self, request: IRequest) -> bytes:
        """Everything the page shows, in one answer: it polls this, with its
        search and filters (as /feed/events takes them)."""
        asked = self._query(request)
        if isinstance(asked, bytes):
            return asked
        query, shown, window = asked
        events = await self._events(query, min(SHOWN if shown is None else shown, self.view.keep()))
        about = self.view.about
        health = self.view.health()
        counts = self.view.counts()
        batches = counts.pop(BATCH_REQUESTS, {})
        rates = self.history.rates(window)  # shared between polls: not to be changed here
        rates = {**rates, "kinds": {k: v for k, v in rates["kinds"].items() if k != BATCH_REQUESTS}}
        kinds = sorted(set(counts) | set(rates["kinds"]))
        return self._json(request, 200, {
            "now": time.time(),
            "poll_ms": POLL_MS,
            "sample_seconds": SAMPLE_SECONDS,
            "keep": self.view.keep(),
            "shown": SHOWN,
            "status": {"version": about.version, "uptime": uptime(about), "dsn": about.dsn,
                       "ready": self.view.ready(), "health": health},
            "served": self.view.served(),  # the page lists these (even at 0), in this order
            "kinds": {k: {"accepted": counts.get(k, {}).get("accepted", 0),
                          "rejected": counts.get(k, {}).get("rejected", 0)} for k in kinds},
            "rates": rates,
            "reasons": by_reason(counts),
            "batch_requests": {"accepted": batches.get("accepted", 0), "rejected": batches.get("rejected", 0)},
            **events,
        })

    @app.route("/feed/events", methods=["GET"])
    def events(self, request: IRequest) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self._events_answer(request))

    async def _events_answer(self, request: IRequest) -> bytes:
        """The query API, for a team's integration tests: `kind`, `status`
        (accepted or rejected), `q` (text in any value, or `Field=value`),
        `since` (Unix seconds), `limit`; the lists as the page has them."""
        asked = self._query(request)
        if isinstance(asked, bytes):
            return asked
        query, limit, _ = asked
        return self._json(request, 200, {"now": time.time(), "keep": self.view.keep(),
                                         **(await self._events(query, limit))})

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE)
        return self.view.metrics()

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request: IRequest) -> bytes:
        return self._json(request, 200, self.view.health())

    @app.route("/readyz", methods=["GET"])
    def readyz(self, request: IRequest) -> bytes:
        ready = self.view.ready()
        return self._json(request, 200 if ready else 503, {"ready": ready})

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        return self._json(request, 404, {"error": "not found"})

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, MethodNotAllowed)  # the only exception this handler is registered for
        allowed = ", ".join(sorted(error.valid_methods or ["GET"]))
        request.setHeader(b"Allow", allowed.encode("ascii"))
        return self._json(request, 405, {"error": "method not allowed", "allow": allowed})

def _limit(args: Mapping[bytes, list[bytes]]) -> int | None:
    """`limit`: at most this many of each list; None when not given."""
    values = args.get(b"limit")
    if not values:
        return None
    try:
        limit = int(values[-1])
    except ValueError:
        limit = -1
    if limit < 0:
        raise BadQuery("limit must be a whole number, 0 or more")
    return limit


def _window(args: Mapping[bytes, list[bytes]]) -> int:
    """The graphs' window in seconds: one of WINDOWS (the page's "last 5
    minutes", "last hour")."""
    values = args.get(b"window")
    if not values:
        return WINDOWS[0]
    try:
        window = int(values[-1])
    except ValueError:
        window = -1
    if window not in WINDOWS:
        raise BadQuery(f"window must be one of {', '.join(map(str, WINDOWS))}")
    return window
