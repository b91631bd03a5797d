"""The HTTP API: the original's four POST endpoints, and every error as JSON.

Each request is parsed and validated on the reactor thread, handed to the
batcher, and answered 201 only when the batcher reports its row committed.
"""

# Twisted's IRequest and Failure declare their methods without annotations, so
# strict mypy would report every request.setHeader() as a call to an untyped
# function.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from klein import Klein
from klein.resource import KleinResource
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from track.fields.eventtime import SENT_AT_HEADER, EventTime, batch_sent_at, sent_at_of
from track.fields.kinds import EVENT_TYPES, EventType, InvalidEvent
from track.fields.tables import KindTables
from track.logs import Logger
from track.metrics import Metrics
from track.pipeline.batcher import Batcher
from track.types import InternalError, Overloaded, RowRejected, Unavailable
from track.web.anonymize import Addresses, Anonymizer, mark_anonymous
from track.web.batchbody import ANONYMOUS, DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH_BODY, read_batch
from track.web.body import BodyError, decode_content, read_fields
from track.web.clientip import Network
from track.web.cors import CORS
from track.web.eventpath import path_kind
from track.web.health import public_health
from track.web.openapi import openapi_document
from track.web.ratelimit import RateLimiter, retry_after
from track.web.responses import json_response
from track.web.script import SCRIPT_PATH, StaticScript
from track.web.site import DEFAULT_MAX_BODY
from track.web.suppress import Suppression, answer_suppressed

log = Logger(namespace="track.app")

API_PREFIX = "/api/1.0/track"
BATCH_PATH = f"{API_PREFIX}/batch".encode()
OPENAPI_PATH = "/api/1.0/openapi.json"
MESSAGE_ID_HEADER = b"Track-Message-Id"
RETRY_AFTER_SECONDS = 1
_EPOCH = datetime(1970, 1, 1)
_METHOD_ORDER = ["POST", "OPTIONS", "GET", "HEAD"]
_ROUTED_METHODS = frozenset(m.encode() for m in _METHOD_ORDER)
_BODY_REASONS = {400: "unreadable", 408: "timeout", 413: "too_large", 415: "unsupported_media_type"}


def per_kind(app: Klein, methods: list[str]) -> Callable[[Any], Any]:
    """One static route per event kind, passing `kind` to the handler.
    werkzeug matches static paths by dict lookup: about 2 us less per
    request than an <any(...)> converter's regex."""

    def route_each(f: Any) -> Any:
        for kind in EVENT_TYPES:
            f = app.route(f"{API_PREFIX}/{kind}/", methods=methods, strict_slashes=False,
                          endpoint=f"{f.__name__}_{kind}", defaults={"kind": kind})(f)
        return f

    return route_each


def is_batch_path(path: bytes) -> bool:
    """Batch requests get the larger body limit."""
    return path.split(b"?", 1)[0].rstrip(b"/") == BATCH_PATH


def unavailable(request: IRequest, reason: str) -> bytes:
    """503 + Retry-After: nothing was stored, so retrying is safe."""
    request.setHeader(b"Retry-After", str(RETRY_AFTER_SECONDS).encode())
    return json_response(request, 503, {"error": reason, "retry_after": RETRY_AFTER_SECONDS})


def _grouped(groups: Mapping[str, tuple[list[Any], list[int]]]) -> dict[str, int]:
    """A batch's parsed events, counted by kind."""
    return {kind: len(rows) for kind, (rows, _) in groups.items()}


class TrackApp:
    """Klein routes bound to one batcher and one set of field tables."""

    app = Klein()
    # Each per-kind route has its own endpoint, so there is never another URL
    # to redirect to; skip werkzeug's per-request search for one.
    app.url_map.redirect_defaults = False

    def __init__(
        self,
        batcher: Batcher,
        clock: IReactorTime,
        event_types: Mapping[str, EventType] = EVENT_TYPES,
        trusted_proxies: Sequence[Network] = (),
        cors: CORS | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        health: Any = None,
        metrics: Metrics | None = None,
        atomic_insert: Any = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_body: int = DEFAULT_MAX_BATCH_BODY,
        recent: Any = None,
        rate_limiter: RateLimiter | None = None,
        anonymize: Anonymizer | None = None,
        suppression: Suppression | None = None,
        event_time: EventTime | None = None,
    ) -> None:
        self.suppression = suppression or Suppression()  # forget --suppress: answered 201, kept nowhere
        self.batcher = batcher
        self.clock = clock
        # Shared with the writer: refitted in place when the database appears.
        self.event_types = event_types if isinstance(event_types, KindTables) else KindTables(event_types)
        self.event_time = event_time or EventTime()
        self.trusted_proxies = tuple(trusted_proxies)
        # --anonymize-ip and Track-Anonymous: applied before anything keeps an address.
        self.addresses = Addresses(self.trusted_proxies, anonymize or Anonymizer())
        self._remote_ip = self.addresses.stored
        self._scrub = self.addresses.scrub
        self.cors = cors or CORS(())
        self.max_body = max_body
        self.health = health
        self.metrics = metrics or Metrics()
        self._accepted: dict[str, Any] = {}  # bound counters: labels() costs per call
        self.atomic_insert = atomic_insert
        self.max_batch = max_batch
        self.max_batch_body = max_batch_body
        self.recent = recent  # track.admin.recent.Recent with --admin-http: the live page's latest events
        if recent is not None:
            recent.client_of = self._remote_ip  # rejections show the client behind a trusted proxy
        self._script = StaticScript()
        self.rate_limiter = rate_limiter  # None: --rate-limit off, and no cost
        self._openapi = b""
        self.event_types.subscribe(self._document)
        self._document(self.event_types)

    def _document(self, event_types: Mapping[str, EventType]) -> None:
        """(Re)build the OpenAPI document, as the field limits are now."""
        self._openapi = json.dumps(openapi_document(
            event_types, API_PREFIX, self.max_body, self.max_batch, self.max_batch_body), indent=1).encode()

    def resource(self) -> Any:
        return CaseSensitiveMethods(self.app, self)

    def unrecognized_method(self, request: IRequest) -> Any:
        """What an unknown method gets: 405 with the path's Allow, or 404."""
        path = request.path.decode("utf-8", "replace")
        urls = self.app.url_map.bind("")
        # The trailing slash is optional on every route, for this answer too.
        valid = list(urls.allowed_methods(path) or (urls.allowed_methods(path + "/") if path[-1:] != "/" else []))
        if not valid:
            return self.not_found(request, Failure(NotFound()))
        return self.method_not_allowed(request, Failure(MethodNotAllowed(valid_methods=valid)))

    def _now(self) -> datetime:
        """Receive time, naive UTC, for the Created column."""
        # Half the cost of fromtimestamp(t, timezone.utc).replace(tzinfo=None).
        return _EPOCH + timedelta(seconds=self.clock.seconds())

    def _count_routed(self, request: IRequest, reason: str) -> None:
        """A refusal the routes give an event path without parsing an event
        (404, 405, an unexpected 500): counted, as the admin page shows it."""
        kind = path_kind(request.path)
        if kind is not None:
            self.metrics.rejected.labels(kind, reason).inc()

    def _forbidden_origin(self, request: IRequest, kind: str, count: int = 1) -> bytes | None:
        """403 for a POST from an origin --cors-origin does not allow: a form
        or text/plain POST needs no preflight, so the browser would deliver
        it whatever our CORS headers say."""
        if not self.cors.refused(request):
            return None
        self.metrics.rejected.labels(kind, "forbidden_origin").inc(count)
        if kind == "batch":
            self.metrics.batch_requests.labels("forbidden_origin").inc()
        origin = request.getHeader(b"origin").decode("latin-1")
        return json_response(request, 403, {"error": "origin not allowed", "origin": origin})

    @per_kind(app, ["POST"])
    def track(self, request: IRequest, kind: str) -> Any:
        event = self.event_types[kind]
        if (forbidden := self._forbidden_origin(request, kind)) is not None:
            return forbidden
        self.cors.annotate(request)
        if self.rate_limiter is not None and (over := self._over_rate(request, 1)) is not None:
            self.metrics.rate_limited.labels(kind).inc()
            self.metrics.rejected.labels(kind, "rate_limited").inc()
            return over
        try:
            body = decode_content(
                request.getHeader(b"content-encoding"), request.content.read(), self.max_body
            )
            fields = read_fields(
                request.getHeader(b"content-type"), body, request.uri.partition(b"?")[2]
            )
            created = self._now()
            row = self._scrub(event, self.event_time.parse(event, fields, self._remote_ip(request), created,
                                                            sent_at_of(request.getHeader(SENT_AT_HEADER))), request)
            # On every answer from here on, 503s included: a client that sent
            # no MessageID can retry with this one and never store twice.
            request.setHeader(MESSAGE_ID_HEADER, row[event.message_id_index].encode("ascii"))
            if self.suppression.holds(event, row):
                return self._suppressed(request, kind)
            d = self.batcher.submit(event, row)
        except InvalidEvent as e:
            self.metrics.rejected.labels(kind, "invalid").inc()
            return json_response(request, 400, {"error": "invalid event", "fields": e.fields})
        except BodyError as e:
            self.metrics.rejected.labels(kind, _BODY_REASONS.get(e.code, "unreadable")).inc()
            return json_response(request, e.code, {"error": e.message, **e.extra})
        except Overloaded:
            self.metrics.rejected.labels(kind, "overloaded").inc()
            return unavailable(request, "too many events are waiting to be stored")
        # callbackKeywords={}: Twisted's default is a MappingProxyType, which
        # the call unpacks with ** about 150 ns slower than an empty dict.
        d.addCallbacks(self._created, self._not_stored, callbackArgs=(request, kind, row), callbackKeywords={},
                       errbackArgs=(request, kind))
        return d

    def _over_rate(self, request: IRequest, count: int) -> bytes | None:
        """429 + Retry-After if the client (after --trusted-proxy) is over
        --rate-limit; `count` events are spent otherwise (a batch: all)."""
        assert self.rate_limiter is not None
        wait = self.rate_limiter.take(self.addresses.client(request), count)
        if not wait:
            return None
        seconds = retry_after(wait)
        request.setHeader(b"Retry-After", b"%d" % seconds)
        return json_response(request, 429, {"error": "too many events from this client", "retry_after": seconds,
                                            "events_per_second": self.rate_limiter.rate})

    def _count_accepted(self, kind: str, count: int = 1) -> None:
        counter = self._accepted.get(kind)
        if counter is None:
            counter = self._accepted[kind] = self.metrics.accepted.labels(kind)
        counter.inc(count)

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
            kinds = self._kinds_of(items)
            for name, count in kinds.items():
                self.metrics.rate_limited.labels(name).inc(count)
            self._batch_refused(kinds, "rate_limited")
            return over
        created = self._now()
        remote_ip = self._remote_ip(request)
        groups: dict[str, tuple[list[Any], list[int]]] = {}
        problems: list[dict[str, Any]] = []
        suppressed: list[tuple[int, str, str]] = []  # index, MessageID, kind
        problem_kinds: list[str] = []
        for index, item in enumerate(items):
            kind = item.pop("type", None) if isinstance(item, dict) else None
            event = self.event_types.get(kind) if type(kind) is str else None
            if event is None:
                problems.append({"index": index, "fields": {"type": f"must be one of {', '.join(self.event_types)}"}})
                problem_kinds.append("batch")
                continue
            try:
                # item no longer holds "type" (popped above)
                row = self._scrub(event, self.event_time.parse(event, item, remote_ip, created, sent_at), request)
            except InvalidEvent as e:
                problems.append({"index": index, "fields": e.fields})
                problem_kinds.append(event.name)
                continue
            if self.suppression.holds(event, row):
                suppressed.append((index, row[event.message_id_index], event.name))
                continue
            rows, indexes = groups.setdefault(event.name, ([], []))
            rows.append(row)
            indexes.append(index)
        if problems:
            kinds = _grouped(groups)
            for kind in problem_kinds:
                kinds[kind] = kinds.get(kind, 0) + 1
            self._batch_refused(kinds, "invalid")
            return json_response(request, 400, {"error": "invalid batch: nothing was stored",
                                                 "events": problems})
        if not groups:  # every event suppressed
            return self._batch_done(None, request, groups, suppressed)
        work = [(self.event_types[kind], rows) for kind, (rows, _) in groups.items()]
        try:
            d = self.batcher.submit_together(lambda: self.atomic_insert(work), len(items))
        except Overloaded:
            self._batch_refused(_grouped(groups), "overloaded")
            return unavailable(request, "too many events are waiting to be stored")
        d.addCallbacks(self._batch_done, self._batch_failed,
                       callbackArgs=(request, groups, suppressed), errbackArgs=(groups, request))
        return d

    def _batch_done(self, refused: Any, request: IRequest, groups: dict[str, tuple[list[Any], list[int]]],
                    suppressed: list[tuple[int, str, str]]) -> bytes:
        kinds = list(groups)
        if refused:
            events: dict[int, dict[str, Any]] = {}
            for group, row, error in refused:
                entry = events.setdefault(groups[kinds[group]][1][row], {})
                if error.column:
                    entry.setdefault("fields", {})[error.column] = error.reason
                else:
                    entry.update(error="refused by the database", detail=error.detail)
            self._batch_refused(_grouped(groups), "refused_by_database")
            return json_response(request, 400, {"error": "invalid batch: nothing was stored",
                                                 "events": [{"index": i, **e} for i, e in sorted(events.items())]})
        ids: list[tuple[int, str]] = []
        self.metrics.batch_requests.labels("accepted").inc()
        for kind, (rows, indexes) in groups.items():
            event = self.event_types[kind]
            self._count_accepted(kind, len(rows))
            if self.recent is not None:
                for row in rows:
                    self.recent.accepted(kind, row)
            ids += [(i, row[event.message_id_index]) for i, row in zip(indexes, rows, strict=True)]
        for index, message_id, kind in suppressed:  # answered as stored, and kept nowhere
            self._suppressed(request, kind)
            ids.append((index, message_id))
        return json_response(request, 201, {"stored": len(ids), "message_ids": [m for _, m in sorted(ids)]})

    def _suppressed(self, request: IRequest, kind: str) -> bytes:
        return answer_suppressed(request, self.metrics.suppressed.labels(kind))

    def _batch_failed(self, failure: Failure, groups: dict[str, tuple[list[Any], list[int]]],
                      request: IRequest) -> bytes | Failure:
        return self._failure_answer(failure, request, _grouped(groups), batch=True)

    def _batch_refused(self, kinds: Mapping[str, int], reason: str) -> None:
        """A refused batch: each of its events under its own kind (one
        whose type names none, as "batch"), and the request once."""
        for kind, count in kinds.items():
            self.metrics.rejected.labels(kind, reason).inc(count)
        self.metrics.batch_requests.labels(reason).inc()

    def _kinds_of(self, items: Sequence[Any]) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for item in items:
            kind = item.get("type") if isinstance(item, dict) else None
            name = kind if type(kind) is str and kind in self.event_types else "batch"
            kinds[name] = kinds.get(name, 0) + 1
        return kinds

    def _failure_answer(self, failure: Failure, request: IRequest, kinds: Mapping[str, int],
                        batch: bool = False) -> bytes | Failure:
        """503 for an outage, 500 for a failure the store already logged;
        anything else goes on to internal_error."""
        if failure.check(Unavailable):
            reason = "unavailable"
        elif failure.check(InternalError):
            reason = "internal_error"
        else:
            return failure
        if batch:
            self._batch_refused(kinds, reason)
        else:
            for kind, count in kinds.items():
                self.metrics.rejected.labels(kind, reason).inc(count)
        if reason == "unavailable":
            return unavailable(request, "the database cannot take events right now")
        return json_response(request, 500, {"error": "internal error"})

    @per_kind(app, ["OPTIONS"])
    def preflight(self, request: IRequest, kind: str = "batch") -> bytes:
        """CORS preflight: 204, with CORS headers only for allowed origins."""
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
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % len(self._openapi))
        return self._openapi

    @app.route(SCRIPT_PATH, methods=["GET"])
    def script(self, request: IRequest) -> bytes:
        """The browser tracker (track/web/static/track.js)."""
        return self._script.render(request)

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request: IRequest) -> bytes:
        """Liveness, and what a human wants to know: database up?  spool size?"""
        state = self.health.health() if self.health else {"status": "ok", "database": "up",
                                                          "spool": {"events": 0, "bytes": 0}}
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
        ready = self.health.ready() if self.health else True
        return json_response(request, 200 if ready else 503, {"ready": ready})

    def _created(self, _: None, request: IRequest, kind: str, row: Any) -> bytes:
        self._count_accepted(kind)
        if self.recent is not None:
            self.recent.accepted(kind, row)
        request.setResponseCode(201)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Content-Length", b"0")
        return b""

    def _not_stored(self, failure: Failure, request: IRequest, kind: str) -> bytes | Failure:
        rejected = failure.value
        if isinstance(rejected, RowRejected):
            self.metrics.rejected.labels(kind, "refused_by_database").inc()
            error = rejected.error
            if error.column:
                body = {"error": "invalid event", "fields": {error.column: error.reason}}
            else:  # a trigger's SIGNAL or a CHECK constraint: its message says why
                body = {"error": "refused by the database", "detail": error.detail}
            return json_response(request, 400, body)
        return self._failure_answer(failure, request, {kind: 1})

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        self.cors.annotate(request)
        self._count_routed(request, "not_found")
        return json_response(
            request,
            404,
            {"error": "not found", "endpoints": [f"{API_PREFIX}/{k}/" for k in self.event_types]},
        )

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        self.cors.annotate(request)
        error = failure.value
        assert isinstance(error, MethodNotAllowed)  # the only exception this handler is registered for
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
