"""Prometheus metrics for `GET /metrics` (prometheus_client).

Each service gets its own registry, so several apps in one process (tests,
workers) never mix their numbers.  Gauges are read when scraped, from the
objects that own the state, so nothing on the hot path updates them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST.encode()

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("track_events_accepted", "Events answered 201, by type.",
                                ["type"], registry=r)
        self.rejected = Counter("track_events_rejected", "Events not accepted, by type and reason.",
                                ["type", "reason"], registry=r)
        self.rate_limited = Counter("track_rate_limited",
                                    "Events answered 429 because their client was over --rate-limit, by type.",
                                    ["type"], registry=r)
        self.batch_size = Histogram("track_batch_size", "Rows per INSERT batch.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.flush_seconds = Histogram("track_flush_seconds",
                                       "Time from a batch leaving its buffer to its commit (or spooling).",
                                       buckets=FLUSH_BUCKETS, registry=r)
        self.pending = Gauge("track_pending_events", "Events buffered or being written.", registry=r)
        self.spool_bytes = Gauge("track_spool_bytes", "Bytes held in the durable spool.", registry=r)
        self.spool_events = Gauge("track_spool_events", "Events held in the durable spool.", registry=r)
        self.dead_letter_events = Gauge("track_dead_letter_events",
                                        "Spooled events the database refused, kept as dead letters.",
                                        registry=r)
        self.spool_writable = Gauge("track_spool_writable",
                                    "1 while the spool's disk takes writes, else 0.", registry=r)
        self.database_up = Gauge("track_database_up", "1 while the database takes writes, else 0.",
                                 registry=r)
        # Counted instead of logged one line per event (see track.logs.Summaries).
        self.accept_errors = Counter("track_accept_errors", "accept() calls that failed, by errno name.",
                                     ["errno"], registry=r)
        self.timed_out = Counter("track_connections_timed_out",
                                 "Connections closed for a timeout (idle, or a request not received in time).",
                                 registry=r)
        self.dropped = Counter("track_connections_dropped",
                               "Connections dropped, by reason: max_connections (answered 503 and closed), "
                               "no_descriptors (accepted on the reserved descriptor and closed) or "
                               "client_left (the client closed before its answer).",
                               ["reason"], registry=r)
        self.db_reconnects = Counter("track_db_reconnects",
                                     "Pooled database connections found dropped and opened again.", registry=r)

    def watch(self, pending: Callable[[], float], database_up: Callable[[], bool],
              spool: Any = None) -> None:
        """Read these when scraped."""
        self.pending.set_function(pending)
        self.database_up.set_function(lambda: 1.0 if database_up() else 0.0)
        if spool is not None:
            self.spool_bytes.set_function(lambda: spool.bytes)
            self.spool_events.set_function(lambda: spool.events)
            self.dead_letter_events.set_function(lambda: spool.dead_letters.events())
            self.spool_writable.set_function(lambda: 1.0 if spool.writable else 0.0)

    def flushed(self, rows: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.flush_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
