"""How the parts are wired, given a Config and a role: the one way, for
twistd (track/run/tap.py) and the tests alike.

A standalone process and a worker build the same TrackService (a worker
also reports to its parent's directory and ends with its parent); the
parent of `--workers N` builds the WorkerPool, and the admin listener over
the workers' shared files when --admin-http is on.
"""

from __future__ import annotations

import time
from typing import Any, overload

from twisted.application.service import MultiService, Service
from twisted.internet.threads import deferToThreadPool

from track import __version__
from track.admin.health import ProcessHealth
from track.admin.recent import Recent
from track.admin.service import AdminService
from track.admin.shared import SharedHealth, WorkerReport
from track.admin.views import About, LocalView, SharedView
from track.events.files import served_kinds
from track.fields.compile import compile_kinds
from track.fields.eventtime import EventTime
from track.fields.tables import KindTables
from track.logs import Logger
from track.metrics import Metrics
from track.pipeline.batcher import Batcher
from track.pipeline.writer import Writer
from track.run.accepting import default_max_connections
from track.run.config import Config, Parent, Standalone, Worker
from track.run.declaration import Declaration, fit_served
from track.run.orphan import ParentWatch
from track.run.reload import Reload
from track.run.service import TrackService
from track.run.workers import WorkerPool
from track.seams import NO_TAP, Health
from track.spool import Spool
from track.spool.lock import DirectoryLock
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN
from track.storage.prepare import load_limits, migrate_on_own_connection, save_limits
from track.storage.store import Store
from track.web.app import TrackApp, is_batch_path
from track.web.clients.anonymize import Anonymizer
from track.web.clients.cors import CORS
from track.web.clients.ratelimit import RateLimiter
from track.web.http.site import TrackSite
from track.web.suppress import Suppression, SuppressionRefresh, initial_suppression

log = Logger(namespace="track")


def outage_wait(seconds: float, dsn: DSN) -> float:
    """--outage-wait, but never shorter than a multi-host DSN's failover
    timeout: a write going round the hosts (or a cluster reconfiguring after
    losing a node) is given that long before it counts as an outage."""
    if seconds and len(dsn.hosts) > 1:
        return max(seconds, dsn.timeouts.failover)
    return seconds


@overload
def build_service(config: Config, role: Standalone | Worker, reactor: Any, fitted: dict[str, Any] | None,
                  spool_lock: DirectoryLock | None = None) -> TrackService: ...


@overload
def build_service(config: Config, role: Parent, reactor: Any, fitted: dict[str, Any] | None,
                  spool_lock: DirectoryLock | None = None) -> Service: ...


def build_service(config: Config, role: Standalone | Worker | Parent, reactor: Any,
                  fitted: dict[str, Any] | None, spool_lock: DirectoryLock | None = None) -> Service:
    """The service of a process in `role`.  `fitted` is prepare_database's
    answer (None: not reachable yet); `spool_lock` the spool directory's
    lock, if already taken (the parent's: the workers lock worker-N
    beneath it)."""
    if isinstance(role, Parent):
        return _parent(config, reactor, spool_lock)
    return _track_service(config, role, reactor, fitted, spool_lock)


def _parent(config: Config, reactor: Any, spool_lock: DirectoryLock | None) -> Service:
    """The parent of --workers N; the database was migrated once, before,
    so each worker finds the schema up to date."""
    admin = config.admin_endpoint
    pool = WorkerPool(config, reactor, feed=admin is not None)
    pool.spool_lock = spool_lock
    if admin is None:
        return pool
    # The parent serves the admin listener, from the workers' shared files.
    top = MultiService()  # type: ignore[no-untyped-call]
    pool.setServiceParent(top)  # type: ignore[no-untyped-call]
    about = About(__version__, config.dsn.redacted(), time.time())
    view = SharedView(about, pool.state, pool.metrics_dir, config.admin_keep, pool.restarts)
    AdminService(admin, view, reactor, list(config.admin_hosts), config.admin_token).setServiceParent(top)  # type: ignore[no-untyped-call]
    return top


def _track_service(config: Config, role: Standalone | Worker, reactor: Any, fitted: dict[str, Any] | None,
                   spool_lock: DirectoryLock | None) -> TrackService:
    """Storage, then the pipeline (writer, spool, batcher), then the HTTP
    edge; a worker's reports and the admin listener beside them."""
    dsn = config.dsn
    dialect = dialect_for(dsn)
    spool = None
    if config.spool_dir:
        spool = Spool(config.spool_dir, config.spool_max_bytes, reactor, lock=spool_lock)
        spool.open()
    # The kinds --events declares (the original four by default), compiled
    # once here: every process (each worker too) reads the same file.
    declared = served_kinds(config.events)
    served = compile_kinds(declared)
    # One dict, shared by the validator and the spool's replay, refitted in
    # place if the database first appears after start-up, replaced on SIGHUP
    # (its subscribers, such as the OpenAPI document, are told).
    if fitted:
        tables = fit_served(served, fitted)
        if spool is not None:
            save_limits(spool.directory, tables)
    else:
        assert spool is not None, "makeService refuses an unreachable database without a spool"
        tables = load_limits(spool.directory, served)
    kinds = KindTables(tables)
    if spool is not None:  # the limits to validate with if the next start finds no database
        directory = spool.directory
        kinds.subscribe(lambda refitted: save_limits(directory, dict(refitted)))
    store = Store(dialect)
    # forget --suppress: read now (when the database is there) and every 10 s.
    suppression = Suppression(initial_suppression(dialect) if fitted is not None else frozenset())

    declaration = Declaration(declared, served, kinds, dsn, lambda now: deferToThreadPool(
        reactor, reactor.getThreadPool(), migrate_on_own_connection, dialect, now))
    writer = Writer(
        store,
        spool,
        reactor,
        kinds,
        database_up=fitted is not None,
        on_up=None if fitted is not None else declaration.database_appeared,
        outage_wait=outage_wait(config.outage_wait, dsn),
    )
    worker = role if isinstance(role, Worker) else None
    metrics = Metrics(worker.metrics_dir, worker.index) if worker is not None else Metrics()
    batcher = Batcher(
        writer.insert,
        reactor,
        batch_size=config.batch_size,
        min_batch=config.min_batch,
        flush_interval=config.flush_interval_ms / 1000.0,
        max_pending=config.max_pending,
        on_flushed=metrics.flushed,
        insert_together=writer.insert_atomic,
    )
    metrics.watch(lambda: batcher.pending, lambda: writer.up, spool)
    # The latest events for the admin page: kept only when it is on (here,
    # or in the parent of --workers, which tells its workers so).
    admin = config.admin_endpoint
    recent = Recent(config.admin_keep) if admin is not None or (worker is not None and worker.feed) else None
    health: Health = ProcessHealth(writer)
    extra: list[Service] = [SuppressionRefresh(suppression, store, reactor),
                            Reload(config.events, dsn, dialect, reactor, declaration.serve)]
    if worker is not None:  # shut down when the parent is gone; report to its directory
        extra.append(ParentWatch(worker.parent, reactor))
        shared = SharedHealth(health, worker.state, worker.index, time.time())
        health = shared
        extra.append(WorkerReport(shared, metrics.refresh, recent, kinds, reactor))
    elif admin is not None:
        about = About(__version__, dsn.redacted(), time.time())
        local = LocalView(about, metrics, health, recent or Recent(config.admin_keep), kinds)
        extra.append(AdminService(admin, local, reactor, list(config.admin_hosts), config.admin_token))
    cors = CORS(list(config.cors_origins))
    app = TrackApp(
        batcher,
        reactor,
        kinds,
        config.trusted_proxies,
        cors,
        config.max_body,
        health=health,
        metrics=metrics,
        max_batch=config.max_batch,
        max_batch_body=config.max_batch_body,
        tap=recent or NO_TAP,
        rate_limiter=RateLimiter(config.rate_limit, reactor) if config.rate_limit else None,
        anonymize=Anonymizer(config.anonymize_ip or 0, config.anonymize_ipv6 or 0),
        suppression=suppression,
        event_time=EventTime(config.max_clock_skew, config.max_event_age),
    )
    max_connections = config.max_connections or default_max_connections()
    site = TrackSite(
        app.resource(),
        config.access_log,
        config.request_timeout or None,
        body_limit=lambda path: config.max_batch_body if is_batch_path(path) else config.max_body,
        max_connections=max_connections,
        metrics=metrics,
        cors=cors,
        addresses=app.addresses,
        tap=recent or NO_TAP,
    )

    def reconnected() -> None:  # on a pool thread
        metrics.db_reconnects.inc()
        reactor.callFromThread(site.summaries.add, "reconnected to the database {n} times")

    store.on_reconnect = reconnected
    store.hosts.on_switch = metrics.db_host_switches.inc
    log.info("track {version} storing events in {dsn}, spool {spool}, at most {n} connections",
             version=__version__, dsn=dsn.redacted(), spool=spool.directory if spool else "off",
             n=max_connections)
    return TrackService(
        config.endpoint,
        site,
        batcher,
        writer,
        store,
        reactor,
        shutdown_timeout=config.shutdown_timeout,
        cpuprofile=config.cpuprofile,
        extra=extra,
    )
