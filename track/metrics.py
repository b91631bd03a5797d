"""Prometheus metrics for `GET /metrics` (prometheus_client).

Each service gets its own registry, so several apps in one process (tests)
never mix their numbers.  Gauges are read when scraped, from the objects
that own the state, so nothing on the hot path updates them.

With `--workers N` every worker runs with PROMETHEUS_MULTIPROC_DIR set (by
the parent, see track/run/workers.py) and is given the same directory, and
its index, as `Metrics(directory, worker)`: prometheus_client's
multiprocess mode then keeps each counter and histogram in a small mmap'd
file per process, and a scrape of any worker (or of the admin listener in the parent) sums the
files of all workers.  A worker that dies leaves its file behind, so totals
never go backwards when it is restarted; its live gauges are dropped by
`mark_process_dead`.  Counters declared in the usual way below need nothing
more.  Gauges cannot be read at scrape time across processes, so each worker
writes them into its file twice a second (`refresh`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# prometheus_client's own interface: read when it creates a metric's value.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


def render_directory(path: str) -> bytes:
    """The whole service's metrics: the sum over every worker's files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def collect_directory(path: str) -> Iterable[Metric]:
    collector = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
    families: Iterable[Metric] = collector.collect()  # type: ignore[no-untyped-call]
    return families


class Metrics:
    content_type = CONTENT_TYPE

    def __init__(self, directory: str | None = None, worker: int | None = None) -> None:
        """`directory`: a worker's multiprocess directory (None: one
        process, gauges read when scraped); `worker`: its index, the label
        of its own series."""
        self.directory = directory
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("track_events_accepted", "Events answered 201, by type.",
                                ["type"], registry=r)
        self.rejected = Counter("track_events_rejected", "Events not accepted, by type and reason.",
                                ["type", "reason"], registry=r)
        self.batch_requests = Counter("track_batch_requests",
                                      "Batch requests, by result: accepted, or the reason they were refused "
                                      "(their events are counted under their own types in track_events_*).",
                                      ["result"], registry=r)
        self.rate_limited = Counter("track_rate_limited",
                                    "Events answered 429 because their client was over --rate-limit, by type.",
                                    ["type"], registry=r)
        self.suppressed = Counter("track_suppressed_events",
                                  "Events of a suppressed ProfileID (forget --suppress): answered 201, not stored.",
                                  ["type"], registry=r)
        self.batch_size = Histogram("track_batch_size", "Rows per INSERT batch.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.flush_seconds = Histogram("track_flush_seconds",
                                       "Time from a batch leaving its buffer to its commit (or spooling).",
                                       buckets=FLUSH_BUCKETS, registry=r)
        # With workers: amounts are summed over the live workers; the up/
        # writable flags are their minimum (1 only while every worker is).
        self.pending = Gauge("track_pending_events", "Events buffered or being written.", registry=r,
                             multiprocess_mode="livesum")
        self.spool_bytes = Gauge("track_spool_bytes", "Bytes held in the durable spool.", registry=r,
                                 multiprocess_mode="livesum")
        self.spool_events = Gauge("track_spool_events", "Events held in the durable spool.", registry=r,
                                  multiprocess_mode="livesum")
        self.dead_letter_events = Gauge("track_dead_letter_events",
                                        "Spooled events the database refused, kept as dead letters.",
                                        registry=r, multiprocess_mode="livesum")
        self.spool_writable = Gauge("track_spool_writable",
                                    "1 while the spool's disk takes writes, else 0.", registry=r,
                                    multiprocess_mode="livemin")
        self.database_up = Gauge("track_database_up", "1 while the database takes writes, else 0.",
                                 registry=r, multiprocess_mode="livemin")
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
        self.cors_unconfigured = Counter("track_cors_unconfigured",
                                         "POSTs from a page of another origin while no --cors-origin is set "
                                         "(the browser hides every answer from such a page).", registry=r)
        self.db_reconnects = Counter("track_db_reconnects",
                                     "Pooled database connections found dropped and opened again.", registry=r)
        self.db_host_switches = Counter("track_db_host_switches",
                                        "Times writes moved to another host of a multi-host DSN.", registry=r)
        self._readers: list[tuple[Gauge, Callable[[], float]]] = []
        self._worker_series: list[tuple[Gauge, Callable[[], float]]] = []
        if self.directory is not None:
            label = str(os.getpid() if worker is None else worker)
            per_worker = {
                "track_worker_up": ("1 for each live worker.", lambda: 1.0),
                "track_worker_pending_events": ("Events buffered or being written, per worker.",
                                                lambda: self.pending_now()),
                "track_worker_spool_events": ("Events held in the durable spool, per worker.",
                                              lambda: self.spool_events_now()),
            }
            for name, (doc, read) in per_worker.items():
                gauge = Gauge(name, doc, ["worker"], registry=r, multiprocess_mode="livemax")
                self._worker_series.append((gauge.labels(label), read))
        self.pending_now: Callable[[], float] = lambda: 0.0
        self.spool_events_now: Callable[[], float] = lambda: 0.0

    def watch(self, pending: Callable[[], float], database_up: Callable[[], bool],
              spool: Any = None) -> None:
        """Read these when scraped (with workers: when refreshed)."""
        self.pending_now = pending
        self._read(self.pending, pending)
        self._read(self.database_up, lambda: 1.0 if database_up() else 0.0)
        if spool is not None:
            self.spool_events_now = lambda: float(spool.events)
            self._read(self.spool_bytes, lambda: spool.bytes)
            self._read(self.spool_events, lambda: spool.events)
            self._read(self.dead_letter_events, lambda: spool.dead_letter_counts()[0])
            self._read(self.spool_writable, lambda: 1.0 if spool.writable else 0.0)
        self.refresh()

    def _read(self, gauge: Gauge, read: Callable[[], float]) -> None:
        if self.directory is None:
            gauge.set_function(read)
        else:
            self._readers.append((gauge, read))

    def refresh(self) -> None:
        """Write the gauges into this worker's file (multiprocess mode only:
        there a scrape may be answered by another process)."""
        for gauge, read in [*self._readers, *self._worker_series]:
            gauge.set(read())

    def flushed(self, rows: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.flush_seconds.observe(seconds)

    def collect(self) -> Iterable[Metric]:
        """Every metric family, summed over the workers when there are any."""
        if self.directory is not None:
            return collect_directory(self.directory)
        return self.registry.collect()

    def render(self) -> bytes:
        if self.directory is not None:
            return render_directory(self.directory)
        return generate_latest(self.registry)
