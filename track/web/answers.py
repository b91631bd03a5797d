"""What the routes share: the app's state (batcher, field tables, limits,
the seams) and how each outcome is answered and counted (201, 400, 403,
429, 503, 500), so that app.py holds the routes alone.
"""

# Twisted's IRequest and Failure declare their methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from track.fields.eventtime import EventTime
from track.fields.kinds import KINDS, Kind
from track.fields.tables import KindTables
from track.metrics import Metrics
from track.pipeline.batcher import Batcher
from track.seams import NO_TAP, EventTap, Health
from track.types import InternalError, Refused, Unavailable
from track.web.bodies.batchbody import DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH_BODY
from track.web.cachedbody import CachedBody
from track.web.clients.anonymize import Addresses, Anonymizer
from track.web.clients.clientip import Network
from track.web.clients.cors import CORS
from track.web.clients.ratelimit import RateLimiter, retry_after
from track.web.eventpath import path_kind
from track.web.http.site import DEFAULT_MAX_BODY
from track.web.openapi import openapi_document
from track.web.responses import json_response
from track.web.script import StaticScript
from track.web.suppress import Suppression, answer_suppressed

API_PREFIX = "/api/1.0/track"
RETRY_AFTER_SECONDS = 1
# The document changes with the events file (SIGHUP) and the database's
# columns: always revalidated, which its ETag makes a 304 while it is the same.
OPENAPI_CACHE = b"no-cache"
_EPOCH = datetime(1970, 1, 1)


def unavailable(request: IRequest, reason: str) -> bytes:
    """503 + Retry-After: nothing was stored, so retrying is safe."""
    request.setHeader(b"Retry-After", str(RETRY_AFTER_SECONDS).encode())
    return json_response(request, 503, {"error": reason, "retry_after": RETRY_AFTER_SECONDS})


def grouped(groups: Mapping[str, tuple[list[Any], list[int]]]) -> dict[str, int]:
    """A batch's parsed events, counted by kind."""
    return {kind: len(rows) for kind, (rows, _) in groups.items()}


class AlwaysUp:
    """The health of an app given none (tests): up, with an empty spool."""

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "database": "up", "spool": {"events": 0, "bytes": 0}}

    def ready(self) -> bool:
        return True


class Answers:
    """The state every route reads, and the answers they give."""

    def __init__(
        self,
        batcher: Batcher,
        clock: IReactorTime,
        kinds: Mapping[str, Kind] = KINDS,
        trusted_proxies: Sequence[Network] = (),
        cors: CORS | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        health: Health | None = None,
        metrics: Metrics | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_body: int = DEFAULT_MAX_BATCH_BODY,
        tap: EventTap = NO_TAP,
        rate_limiter: RateLimiter | None = None,
        anonymize: Anonymizer | None = None,
        suppression: Suppression | None = None,
        event_time: EventTime | None = None,
    ) -> None:
        self.suppression = suppression or Suppression()  # forget --suppress: answered 201, kept nowhere
        self.batcher = batcher
        self.clock = clock
        # Shared with the writer: refitted in place when the database appears.
        self.kinds = kinds if isinstance(kinds, KindTables) else KindTables(kinds)
        self.event_time = event_time or EventTime()
        self.trusted_proxies = tuple(trusted_proxies)
        # --anonymize-ip and Track-Anonymous: applied before anything keeps an address.
        self.addresses = Addresses(self.trusted_proxies, anonymize or Anonymizer())
        self._remote_ip = self.addresses.stored
        self._scrub = self.addresses.scrub
        self.cors = cors or CORS(())
        self.max_body = max_body
        self.health: Health = health or AlwaysUp()
        self.metrics = metrics or Metrics()
        self._accepted: dict[str, Any] = {}  # bound counters: labels() costs per call
        self.max_batch = max_batch
        self.max_batch_body = max_batch_body
        self.tap = tap  # with --admin-http, the live page's latest events (track.admin.recent.Recent)
        self._script = StaticScript()
        self.rate_limiter = rate_limiter  # None: --rate-limit off, and no cost
        self.kinds.subscribe(self._kinds_changed)
        self._kinds_changed(self.kinds)

    def _kinds_changed(self, kinds: Mapping[str, Kind]) -> None:
        """(Re)build the OpenAPI document, as the kinds and their field
        limits are now."""
        self._openapi = CachedBody(json.dumps(openapi_document(
            kinds, API_PREFIX, self.max_body, self.max_batch, self.max_batch_body), indent=1).encode(),
            b"application/json", OPENAPI_CACHE)

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

    def _batch_done(self, refused: Any, request: IRequest, groups: dict[str, tuple[list[Any], list[int]]],
                    suppressed: list[tuple[int, str, str]]) -> bytes:
        names = list(groups)
        if refused:
            events: dict[int, dict[str, Any]] = {}
            for group, row, error in refused:
                entry = events.setdefault(groups[names[group]][1][row], {})
                if error.column:
                    entry.setdefault("fields", {})[error.column] = error.reason
                else:
                    entry.update(error="refused by the database", detail=error.detail)
            self._batch_refused(grouped(groups), "refused_by_database")
            return json_response(request, 400, {"error": "invalid batch: nothing was stored",
                                                 "events": [{"index": i, **e} for i, e in sorted(events.items())]})
        ids: list[tuple[int, str]] = []
        self.metrics.batch_requests.labels("accepted").inc()
        for name, (rows, indexes) in groups.items():
            kind = self.kinds[name]
            self._count_accepted(name, len(rows))
            for row in rows:
                self.tap.accepted(name, row)
            ids += [(i, row[kind.message_id_index]) for i, row in zip(indexes, rows, strict=True)]
        for index, message_id, name in suppressed:  # answered as stored, and kept nowhere
            self._suppressed(request, name)
            ids.append((index, message_id))
        return json_response(request, 201, {"stored": len(ids), "message_ids": [m for _, m in sorted(ids)]})

    def _suppressed(self, request: IRequest, kind: str) -> bytes:
        return answer_suppressed(request, self.metrics.suppressed.labels(kind))

    def _batch_failed(self, failure: Failure, groups: dict[str, tuple[list[Any], list[int]]],
                      request: IRequest) -> bytes | Failure:
        return self._failure_answer(failure, request, grouped(groups), batch=True)

    def _batch_refused(self, counts: Mapping[str, int], reason: str) -> None:
        """A refused batch: each of its events under its own kind (one
        whose type names none, as "batch"), and the request once."""
        for kind, count in counts.items():
            self.metrics.rejected.labels(kind, reason).inc(count)
        self.metrics.batch_requests.labels(reason).inc()

    def _kinds_of(self, items: Sequence[Any]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in items:
            kind = item.get("type") if isinstance(item, dict) else None
            name = kind if type(kind) is str and kind in self.kinds else "batch"
            counts[name] = counts.get(name, 0) + 1
        return counts

    def _failure_answer(self, failure: Failure, request: IRequest, counts: Mapping[str, int],
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
            self._batch_refused(counts, reason)
        else:
            for kind, count in counts.items():
                self.metrics.rejected.labels(kind, reason).inc(count)
        if reason == "unavailable":
            return unavailable(request, "the database cannot take events right now")
        return json_response(request, 500, {"error": "internal error"})

    def _created(self, _: None, request: IRequest, kind: str, row: Any) -> bytes:
        self._count_accepted(kind)
        self.tap.accepted(kind, row)
        request.setResponseCode(201)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Content-Length", b"0")
        return b""

    def _not_stored(self, failure: Failure, request: IRequest, kind: str) -> bytes | Failure:
        refused = failure.value
        if isinstance(refused, Refused):
            self.metrics.rejected.labels(kind, "refused_by_database").inc()
            refusal = refused.refusal
            if refusal.column:
                body = {"error": "invalid event", "fields": {refusal.column: refusal.reason}}
            else:  # a trigger's SIGNAL or a CHECK constraint: its message says why
                body = {"error": "refused by the database", "detail": refusal.detail}
            return json_response(request, 400, body)
        return self._failure_answer(failure, request, {kind: 1})
