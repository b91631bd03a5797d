"""The HTTP API: the original's four POST endpoints, and every error as JSON.

Each request is parsed and validated on the reactor thread, handed to the
batcher, and answered 201 only when the batcher reports its row committed.
"""

# Twisted's IRequest and Failure declare their methods without annotations, so
# strict mypy would report every request.setHeader() as a call to an untyped
# function.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from klein import Klein
from klein.resource import KleinResource
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Rule

from track.fields.eventtime import SENT_AT_HEADER, batch_sent_at, sent_at_of
from track.fields.kinds import InvalidEvent, Kind
from track.logs import Logger
from track.types import Overloaded
from track.web.answers import API_PREFIX as API_PREFIX
from track.web.answers import Answers, grouped, unavailable
from track.web.bodies.batchbody import ANONYMOUS, read_batch
from track.web.bodies.body import BodyError, decode_content, read_fields
from track.web.clients.anonymize import mark_anonymous
from track.web.eventpath import path_name
from track.web.health import public_health
from track.web.responses import json_response
from track.web.script import SCRIPT_PATH

log = Logger(namespace="track.app")

BATCH_PATH = f"{API_PREFIX}/batch".encode()
OPENAPI_PATH = "/api/1.0/openapi.json"
MESSAGE_ID_HEADER = b"Track-Message-Id"
_METHOD_ORDER = ["POST", "OPTIONS", "GET", "HEAD"]
_ROUTED_METHODS = frozenset(m.encode() for m in _METHOD_ORDER)
_BODY_REASONS = {400: "unreadable", 408: "timeout", 413: "too_large", 415: "unsupported_media_type"}


def per_kind(app: Klein, methods: list[str]) -> Callable[[Any], Any]:
    """The route `<name>` of event kinds, passing the kind's `name` to the
    handler, which looks it up in the live tables at request time (a kind
    the events file adds on SIGHUP is served at once; one it removes is a
    404).  Every served kind's name also gets a static route to the same
    handler (TrackApp._kinds_changed)."""

    def route(f: Any) -> Any:
        return app.route(f"{API_PREFIX}/<name>/", methods=methods, strict_slashes=False,
                         endpoint=f"{f.__name__}{KIND_ENDPOINT}")(f)

    return route


KIND_ENDPOINT = "_kind"  # the suffix of the per-kind endpoints: track_kind, preflight_kind
_PER_KIND = {"track": ["POST"], "preflight": ["OPTIONS"]}  # per_kind's handlers


def is_batch_path(path: bytes) -> bool:
    """Batch requests get the larger body limit."""
    return path.split(b"?", 1)[0].rstrip(b"/") == BATCH_PATH


class TrackApp(Answers):
    """Klein routes bound to one batcher and one set of field tables (the
    state and the answers they share: track.web.answers)."""

    app = Klein()
    # Each per-kind route has its own endpoint, so there is never another URL
    # to redirect to; skip werkzeug's per-request search for one.
    app.url_map.redirect_defaults = False
    # Nor merge `//` into `/` by a redirect, which Klein would let through as
    # a 500 with a traceback in the log (any client could fill the log): no
    # such path, a 404.
    app.url_map.merge_slashes = False
    # The kinds with a static route in `app`'s map (shared by every
    # instance): only grows, and only from declarations.
    _routed: ClassVar[set[str]] = set()

    def resource(self) -> Any:
        return CaseSensitiveMethods(self.app, self)

    def _kinds_changed(self, kinds: Mapping[str, Kind]) -> None:
        """The document, and a static route of its own for every kind served
        now, to the per-kind handlers.  werkzeug matches a static path
        segment by a dict lookup; the `<name>` converter's regex costs about
        2 us more a request (a declared kind was 6% slower than session
        through it).  A route is never taken away: the handler still asks
        the live tables, so a kind no longer served is a 404 either way."""
        super()._kinds_changed(kinds)
        for name in kinds:
            if name in self._routed:
                continue
            for handler, methods in _PER_KIND.items():
                self.app.url_map.add(Rule(f"{API_PREFIX}/{name}/", methods=methods, strict_slashes=False,
                                          endpoint=f"{handler}{KIND_ENDPOINT}", defaults={"name": name}))
            self._routed.add(name)

    def unrecognized_method(self, request: IRequest) -> Any:
        """What an unknown method gets: 405 with the path's Allow, or 404."""
        valid = self._allowed(request, with_path=True)
        if not valid:
            return self._not_found(request)
        return self.method_not_allowed(request, Failure(MethodNotAllowed(valid_methods=valid)))

    def _allowed(self, request: IRequest, with_path: bool) -> list[str]:
        """The methods the path takes; the trailing slash is optional on
        every route, for this answer too (`with_path`: also as sent)."""
        path = request.path.decode("utf-8", "replace")
        urls = self.app.url_map.bind("")
        valid = list(urls.allowed_methods(path)) if with_path else []
        if not valid and path[-1:] != "/":
            valid = list(urls.allowed_methods(path + "/"))
        return valid

    @per_kind(app, ["POST"])
    def track(self, request: IRequest, name: str) -> Any:
        kind = self.kinds.get(name)
        if kind is None:
            return self._no_such_kind(request)
        if (forbidden := self._forbidden_origin(request, name)) is not None:
            return forbidden
        self.cors.annotate(request)
        if self.rate_limiter is not None and (over := self._over_rate(request, 1)) is not None:
            self.metrics.rate_limited.labels(name).inc()
            self.metrics.rejected.labels(name, "rate_limited").inc()
            return over
        try:
            body = decode_content(
                request.getHeader(b"content-encoding"), request.content.read(), self.max_body
            )
            fields = read_fields(
                request.getHeader(b"content-type"), body, request.uri.partition(b"?")[2]
            )
            created = self._now()
            row = self._scrub(kind, self.event_time.parse(kind, fields, self._remote_ip(request), created,
                                                            sent_at_of(request.getHeader(SENT_AT_HEADER))), request)
            # On every answer from here on, 503s included: a client that sent
            # no MessageID can retry with this one and never store twice.
            request.setHeader(MESSAGE_ID_HEADER, row[kind.message_id_index].encode("ascii"))
            if self.suppression.holds(kind, row):
                return self._suppressed(request, name)
            d = self.batcher.submit(kind, row)
        except InvalidEvent as e:
            self.metrics.rejected.labels(name, "invalid").inc()
            return json_response(request, 400, {"error": "invalid event", "fields": e.fields})
        except BodyError as e:
            self.metrics.rejected.labels(name, _BODY_REASONS.get(e.code, "unreadable")).inc()
            return json_response(request, e.code, {"error": e.message, **e.extra})
        except Overloaded:
            self.metrics.rejected.labels(name, "overloaded").inc()
            return unavailable(request, "too many events are waiting to be stored")
        # callbackKeywords={}: Twisted's default is a MappingProxyType, which
        # the call unpacks with ** about 150 ns slower than an empty dict.
        d.addCallbacks(self._created, self._not_stored, callbackArgs=(request, name, row), callbackKeywords={},
                       errbackArgs=(request, name))
        return d

    @app.route(f"{API_PREFIX}/batch/", methods=["POST"], strict_slashes=False)
    def batch(self, request: IRequest) -> Any:
        """Many events in one request, stored all together or not at all."""
        if (forbidden := self._forbidden_origin(request, "batch")) is not None:
            return forbidden
        self.cors.annotate(request)
        try:
            body = decode_content(
                request.getHeader(b"content-encoding"), request.content.read(), self.max_batch_body
            )
            items, envelope = read_batch(request.getHeader(b"content-type"), body, self.max_batch)
            if envelope.get(ANONYMOUS) is True:  # for all its events, as Track-Anonymous: 1
                mark_anonymous(request)
            sent_at = batch_sent_at(request.getHeader(SENT_AT_HEADER), envelope)
        except InvalidEvent as e:
            self.metrics.rejected.labels("batch", "invalid").inc(len(items))
            return json_response(request, 400, {"error": "invalid batch: nothing was stored", "fields": e.fields})
        except BodyError as e:
            # Its events cannot be read: the request counts once, as "batch".
            self._batch_refused({"batch": 1}, _BODY_REASONS.get(e.code, "unreadable"))
            return json_response(request, e.code, {"error": e.message, **e.extra})
        if self.rate_limiter is not None and (over := self._over_rate(request, len(items))) is not None:
            counts = self._kinds_of(items)
            for name, count in counts.items():
                self.metrics.rate_limited.labels(name).inc(count)
            self._batch_refused(counts, "rate_limited")
            return over
        created = self._now()
        remote_ip = self._remote_ip(request)
        groups: dict[str, tuple[list[Any], list[int]]] = {}
        problems: list[dict[str, Any]] = []
        suppressed: list[tuple[int, str, str]] = []  # index, MessageID, kind
        problem_kinds: list[str] = []
        for index, item in enumerate(items):
            given = item.pop("type", None) if isinstance(item, dict) else None
            kind = self.kinds.get(given) if type(given) is str else None
            if kind is None:
                problems.append({"index": index, "fields": {"type": f"must be one of {', '.join(self.kinds)}"}})
                problem_kinds.append("batch")
                continue
            try:
                # item no longer holds "type" (popped above)
                row = self._scrub(kind, self.event_time.parse(kind, item, remote_ip, created, sent_at), request)
            except InvalidEvent as e:
                problems.append({"index": index, "fields": e.fields})
                problem_kinds.append(kind.name)
                continue
            if self.suppression.holds(kind, row):
                suppressed.append((index, row[kind.message_id_index], kind.name))
                continue
            rows, indexes = groups.setdefault(kind.name, ([], []))
            rows.append(row)
            indexes.append(index)
        if problems:
            counts = grouped(groups)
            for name in problem_kinds:
                counts[name] = counts.get(name, 0) + 1
            self._batch_refused(counts, "invalid")
            return json_response(request, 400, {"error": "invalid batch: nothing was stored",
                                                 "events": problems})
        if not groups:  # every event suppressed
            return self._batch_done(None, request, groups, suppressed)
        work = [(self.kinds[name], rows) for name, (rows, _) in groups.items()]
        try:
            d = self.batcher.submit_batch(work, len(items))
        except Overloaded:
            self._batch_refused(grouped(groups), "overloaded")
            return unavailable(request, "too many events are waiting to be stored")
        d.addCallbacks(self._batch_done, self._batch_failed,
                       callbackArgs=(request, groups, suppressed), errbackArgs=(groups, request))
        return d

    @per_kind(app, ["OPTIONS"])
    def preflight(self, request: IRequest, name: str = "batch") -> bytes:
        """CORS preflight: 204, with CORS headers only for allowed origins."""
        if name != "batch" and name not in self.kinds:
            return self._no_such_kind(request)
        request.setResponseCode(204)
        request.setHeader(b"Allow", b"POST, OPTIONS")
        self.cors.preflight(request)
        return b""

    @app.route(f"{API_PREFIX}/batch/", methods=["OPTIONS"], strict_slashes=False, endpoint="preflight_batch")
    def preflight_batch(self, request: IRequest) -> bytes:
        answer: bytes = self.preflight(request)
        return answer

    @app.route(OPENAPI_PATH, methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        self.cors.annotate(request)
        return self._openapi.render(request)

    @app.route(SCRIPT_PATH, methods=["GET"])
    def script(self, request: IRequest) -> bytes:
        """The browser tracker (track/web/static/track.js)."""
        return self._script.render(request)

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request: IRequest) -> bytes:
        """Liveness, and what a human wants to know: database up?  spool size?"""
        state = self.health.health()
        # Nothing about the inside (hosts, errors, paths): the admin /healthz has it all.
        return json_response(request, 200, public_health(state))

    @app.route("/metrics", methods=["GET"])
    def prometheus(self, request: IRequest) -> bytes:
        body = self.metrics.render()
        request.setHeader(b"Content-Type", self.metrics.content_type)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body

    @app.route("/readyz", methods=["GET"])
    def readyz(self, request: IRequest) -> bytes:
        """200 while events can be accepted (database up, or room in the
        spool), else 503, so a load balancer sends traffic elsewhere."""
        ready = self.health.ready()
        return json_response(request, 200 if ready else 503, {"ready": ready})

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        # werkzeug finds a slash-less path's route only for a method it
        # takes: another method (HEAD, DELETE) is a 405 there, as with the slash.
        if valid := self._allowed(request, with_path=False):
            answer: bytes = self.method_not_allowed(request, Failure(MethodNotAllowed(valid_methods=valid)))
            return answer
        return self._not_found(request)

    def _not_found(self, request: IRequest) -> bytes:
        self.cors.annotate(request)
        self._count_routed(request, "not_found")
        return json_response(
            request,
            404,
            {"error": "not found", "endpoints": [f"{API_PREFIX}/{k}/" for k in self.kinds]},
        )

    def _no_such_kind(self, request: IRequest) -> bytes:
        """A path the `<name>` route took, naming a kind not served: 404."""
        return self._not_found(request)

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        self.cors.annotate(request)
        error = failure.value
        assert isinstance(error, MethodNotAllowed)  # the only exception this handler is registered for
        name = path_name(request.path)
        if name is not None and name != "batch" and name not in self.kinds:  # `<name>` matched: no such kind
            return self._no_such_kind(request)
        self._count_routed(request, "method_not_allowed")
        valid = set(error.valid_methods or ["POST"])
        allowed = ", ".join(sorted(valid, key=_METHOD_ORDER.index))
        request.setHeader(b"Allow", allowed.encode())
        return json_response(request, 405, {"error": "method not allowed", "allow": allowed})

    # The bare @app.handle_errors means exactly this, but Klein's annotations
    # type its result as a decorator, not as the handler it returns.
    @app.handle_errors(Exception)
    def internal_error(self, request: IRequest, failure: Failure) -> bytes:
        log.failure("unexpected error answering {uri}", failure, uri=request.uri)
        self.cors.annotate(request)
        self._count_routed(request, "internal_error")
        return json_response(request, 500, {"error": "internal error"})


class CaseSensitiveMethods(KleinResource):
    """The Klein resource, with methods matched as sent.  werkzeug upper-cases
    the method before matching, so `post` would be taken for POST; RFC 9110
    section 9.1 says methods are case-sensitive.  Such a method is refused as
    any unknown one is: 405 with the path's Allow (or 404 for no such path),
    a client mistake, not a 5xx."""

    def __init__(self, app: Klein, track: TrackApp) -> None:
        super().__init__(app)
        self.track = track

    def render(self, request: IRequest) -> Any:
        method = request.method
        if method in _ROUTED_METHODS or method == method.upper():
            return super().render(request)
        return self.track.unrecognized_method(request)
