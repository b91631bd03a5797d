"""The twistd entry point: `twistd track [options]`.

Options are checked completely before anything starts, and the database is
reached (and migrated) synchronously in makeService, so a wrong DSN or an
unreachable server ends start-up with one clear line and a non-zero exit.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService, Service
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.threads import deferToThreadPool
from twisted.python import usage

from track import __version__
from track.admin.health import ProcessHealth
from track.admin.recent import KEEP, Recent
from track.admin.service import AdminService
from track.admin.shared import FEED_ENV, STATE_ENV, SharedHealth, WorkerReport
from track.admin.views import About, LocalView, SharedView
from track.fields.eventtime import DEFAULT_MAX_CLOCK_SKEW, DEFAULT_MAX_EVENT_AGE, EventTime
from track.fields.tables import KindTables
from track.logs import Logger, parse_level, set_level
from track.metrics import WORKER_ENV, Metrics
from track.pipeline.batcher import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MIN_BATCH,
    GATHER_SECONDS,
    Batcher,
)
from track.pipeline.writer import DEFAULT_OUTAGE_WAIT, Writer
from track.run.accepting import RESERVED_DESCRIPTORS, default_max_connections, descriptors_at_start
from track.run.listen import address_taken, admin_endpoint_description, endpoint_description, server_endpoint
from track.run.orphan import ParentWatch, parent_pid
from track.run.secrets import DSN_ENV, SecretError, choose_dsn, is_loopback, read_secret_file
from track.run.service import TrackService
from track.run.workers import WorkerPool, tcp_address
from track.seams import NO_TAP, Health
from track.spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES
from track.spool import Spool
from track.spool.lock import DirectoryLock, SpoolLocked
from track.storage.dialect import dialect_for
from track.storage.dsn import DSN, DSNError, parse_dsn
from track.storage.prepare import (
    load_limits,
    log_migrations,
    migrate_on_own_connection,
    prepare_database,
    save_limits,
)
from track.storage.store import Store
from track.web.app import TrackApp, is_batch_path
from track.web.bodies.batchbody import DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH_BODY
from track.web.clients.anonymize import DEFAULT_V6_SEGMENTS, Anonymizer
from track.web.clients.clientip import parse_networks
from track.web.clients.cors import CORS
from track.web.clients.ratelimit import RateLimiter
from track.web.http.site import DEFAULT_MAX_BODY, TrackSite
from track.web.suppress import Suppression, SuppressionRefresh, initial_suppression

log = Logger(namespace="track")


def _positive_int(name: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise usage.UsageError(f"--{name} must be a positive integer, not {text!r}")
    return int(text)


def _non_negative_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise usage.UsageError(f"--{name} must be a number >= 0, not {text!r}")
    return value


def _in_range(name: str, text: str | int | None, most: int) -> int | None:
    if text is None:
        return None
    value = _positive_int(name, str(text))
    if value > most:
        raise usage.UsageError(f"--{name} must be 1 to {most}, not {text!r}")
    return value


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Collect analytics events over HTTP and store them in MySQL/MariaDB, "
        "or in an embedded SQLite file when no --dsn is given. A 201 is sent "
        "only after the event's row is committed."
    )
    optFlags: ClassVar[list[list[str | None]]] = [
        ["verbose", "v", "Debug logging (same as --log-level debug)."],
        ["access-log", None, "Log one line per HTTP request."],
    ]
    optParameters: ClassVar[list[list[str | None]]] = [
        ["http", None, "8080",
         "Where to listen: a port (8080), :8080, host:port, or a Twisted "
         "endpoint description (tcp:8080:interface=127.0.0.1, unix:/run/track.sock)."],
        ["admin-http", None, None,
         "Where to serve the admin page (live events, with their contents), /metrics, /healthz and "
         "/readyz: same forms as --http, but a bare port (8081) binds 127.0.0.1 only. Default: off."],
        ["admin-token", None, None,
         "Require Authorization: Bearer TOKEN on every admin request (the page asks for it once). "
         "Visible in ps: prefer --admin-token-file."],
        ["admin-token-file", None, None, "Read the admin token from this file (readable by its owner only)."],
        ["admin-keep", None, str(KEEP),
         "How many of the latest accepted events, and of the latest rejected requests, each process "
         "holds for the admin page's search and GET /feed/events."],
        ["dsn", None, None,
         "Database: mysql://user:pass@host:3306/db (several hosts of a cluster: "
         "host1:3306,host2:3306; timeouts: ?connect_timeout=3&read_timeout=5&write_timeout=5), the original's "
         "user:pass@tcp(host:3306)/db, or sqlite:///path/to/file. "
         "Default: SQLite file track.sqlite3 in the working directory."],
        ["dsn-file", None, None,
         "Read the DSN from this file (readable by its owner only), so that its password is on no "
         "command line; or set TRACK_DSN. --dsn itself is visible to every local user (ps)."],
        ["log-level", None, "info", "debug, info, warn or error (or the original's 0, 1, -1, -2)."],
        ["cpuprofile", None, None, "Write a cProfile dump (read it with pstats) here at shutdown."],
        ["batch-size", None, str(DEFAULT_BATCH_SIZE), "Most rows in one INSERT."],
        ["min-batch", None, str(DEFAULT_MIN_BATCH),
         f"Under load, fewer rows than this gathered during a write wait up to "
         f"{GATHER_SECONDS * 1000:g} ms for more before their INSERT (1: never wait)."],
        ["flush-interval", None, f"{DEFAULT_FLUSH_INTERVAL * 1000:g}",
         "How long (ms) an event may wait for more to join its INSERT when no "
         "write is busy (0: the next reactor turn). While a write is busy, "
         "events gather and go when it commits."],
        ["max-pending", None, str(DEFAULT_MAX_PENDING),
         "Most events waiting for the database; past it clients get 503 + Retry-After."],
        ["request-timeout", None, "30",
         "Seconds a request may take to arrive, and an idle connection may stay open."],
        ["spool-dir", None, "track-spool",
         "Directory of the durable spool that acknowledges events while the database "
         "is down (empty: no spool, answer 503 instead)."],
        ["outage-wait", None, f"{DEFAULT_OUTAGE_WAIT:g}",
         "Seconds a write may wait for the database to answer before its events go to the spool "
         "(and the database counts as down); 0: wait for the DSN's read timeout. Needs the spool."],
        ["spool-max-bytes", None, str(DEFAULT_SPOOL_BYTES),
         "Most bytes the spool may hold; when full, clients get 503 + Retry-After."],
        ["workers", None, "1",
         "Reactor processes sharing the listening socket (TCP --http only); use one per core."],
        ["max-batch", None, str(DEFAULT_MAX_BATCH), "Most events in one batch request."],
        ["max-batch-body", None, str(DEFAULT_MAX_BATCH_BODY),
         "Largest batch request body in bytes, before and after decoding; larger is 413."],
        ["max-body", None, str(DEFAULT_MAX_BODY),
         "Largest event body in bytes, before and after gzip/deflate decoding; larger is 413."],
        ["max-connections", None, None,
         "Most open client connections per process; past it a new connection is answered 503 + "
         f"Retry-After and closed. Default: the file descriptor limit less {RESERVED_DESCRIPTORS}."],
        ["anonymize-ip", None, None,
         "Zero the last N octets (1 to 4) of every IPv4 client address before it is stored, spooled, "
         "logged or shown. Default: off."],
        ["anonymize-ipv6", None, None,
         "Zero the last M 16-bit segments (1 to 8) of every IPv6 client address. "
         f"Default: {DEFAULT_V6_SEGMENTS} when --anonymize-ip is given, else off."],
        ["rate-limit", None, "0",
         "Events per second each client address may send (after --trusted-proxy), in bursts of up to "
         "twice that; beyond it 429 + Retry-After. Per worker process with --workers. 0: off."],
        ["max-clock-skew", None, f"{DEFAULT_MAX_CLOCK_SKEW:g}",
         "Seconds an event's time (its Timestamp, corrected by the request's SentAt) may be ahead of "
         "the server's clock; further ahead is 400."],
        ["max-event-age", None, f"{DEFAULT_MAX_EVENT_AGE:g}",
         "Seconds an event's time may lie in the past (default 30 days); older is 400."],
    ]

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"track {__version__}")
        sys.exit(0)

    def opt_trusted_proxy(self, value: str) -> None:
        """Address or CIDR of a proxy whose X-Forwarded-For is believed (repeatable)."""
        self.setdefault("trusted-proxy", []).append(value)

    def opt_admin_host(self, value: str) -> None:
        """A Host name (or name:port) the admin listener answers to besides its own address and
        localhost, e.g. behind a reverse proxy (repeatable); any other Host gets 421."""
        self.setdefault("admin-host", []).append(value)

    def opt_cors_origin(self, value: str) -> None:
        """Browser origin allowed to post (repeatable); * allows any."""
        self.setdefault("cors-origin", []).append(value)

    def postOptions(self) -> None:
        self.setdefault("trusted-proxy", [])
        self.setdefault("cors-origin", [])
        self.setdefault("admin-host", [])
        try:
            self["endpoint"] = endpoint_description(self["http"])
            from twisted.internet import reactor

            server_endpoint(reactor, self["endpoint"])
        except Exception as e:  # endpoint parsers raise all sorts
            raise usage.UsageError(f"--http {self['http']!r} is not usable: {e}") from None
        self["admin-endpoint"] = None
        if self["admin-http"] is not None:
            try:
                self["admin-endpoint"] = admin_endpoint_description(self["admin-http"])
                from twisted.internet import reactor

                server_endpoint(reactor, self["admin-endpoint"])
            except Exception as e:  # endpoint parsers raise all sorts
                raise usage.UsageError(f"--admin-http {self['admin-http']!r} is not usable: {e}") from None
        self._admin_token()
        try:
            self["dsn-text"] = choose_dsn(self["dsn"], self["dsn-file"], os.environ)
        except SecretError as e:
            raise usage.UsageError(f"--dsn-file: {e}") from None
        source = "--dsn-file" if self["dsn-file"] is not None else "--dsn" if self["dsn"] is not None else DSN_ENV
        try:
            self["parsed-dsn"] = parse_dsn(self["dsn-text"])
        except DSNError as e:
            raise usage.UsageError(f"{source}: {e}") from None
        # A password typed on the command line: said once at start (makeService).
        self["dsn-on-command-line"] = self["dsn"] is not None and bool(self["parsed-dsn"].password)
        try:
            self["level"] = parse_level("debug" if self["verbose"] else self["log-level"])
        except ValueError as e:
            raise usage.UsageError(f"--log-level: {e}") from None
        try:
            self["proxies"] = parse_networks(self["trusted-proxy"])
        except ValueError as e:
            raise usage.UsageError(f"--trusted-proxy: {e}") from None
        self["batch-size"] = _positive_int("batch-size", str(self["batch-size"]))
        self["min-batch"] = _positive_int("min-batch", str(self["min-batch"]))
        self["max-pending"] = _positive_int("max-pending", str(self["max-pending"]))
        self["max-body"] = _positive_int("max-body", str(self["max-body"]))
        self["max-batch"] = _positive_int("max-batch", str(self["max-batch"]))
        self["admin-keep"] = _positive_int("admin-keep", str(self["admin-keep"]))
        if self["max-connections"] is not None:
            self["max-connections"] = _positive_int("max-connections", str(self["max-connections"]))
        self["workers"] = _positive_int("workers", str(self["workers"]))
        if self["workers"] > 1 and not self["endpoint"].startswith("tcp"):
            raise usage.UsageError("--workers needs a TCP --http (a port or host:port)")
        self["max-batch-body"] = _positive_int("max-batch-body", str(self["max-batch-body"]))
        self["spool-max-bytes"] = _positive_int("spool-max-bytes", str(self["spool-max-bytes"]))
        self["flush-interval"] = _non_negative_float("flush-interval", str(self["flush-interval"]))
        self["request-timeout"] = _non_negative_float("request-timeout", str(self["request-timeout"]))
        self["rate-limit"] = _non_negative_float("rate-limit", str(self["rate-limit"]))
        self["anonymize-ip"] = _in_range("anonymize-ip", self["anonymize-ip"], 4)
        self["anonymize-ipv6"] = _in_range("anonymize-ipv6", self["anonymize-ipv6"], 8)
        if self["anonymize-ip"] and self["anonymize-ipv6"] is None:
            self["anonymize-ipv6"] = DEFAULT_V6_SEGMENTS
        self["max-clock-skew"] = _non_negative_float("max-clock-skew", str(self["max-clock-skew"]))
        self["max-event-age"] = _non_negative_float("max-event-age", str(self["max-event-age"]))
        self["outage-wait"] = _non_negative_float("outage-wait", str(self["outage-wait"]))

    def _admin_token(self) -> None:
        """The admin token, from the option or its file; none is refused
        when the admin listener is reachable from other machines."""
        if self["admin-token"] is not None and self["admin-token-file"] is not None:
            raise usage.UsageError("give --admin-token or --admin-token-file, not both")
        if self["admin-token-file"] is not None:
            try:
                self["admin-token"] = read_secret_file(self["admin-token-file"])
            except SecretError as e:
                raise usage.UsageError(f"--admin-token-file: {e}") from None
        elif self["admin-token"] is not None and not self["admin-token"].strip():
            raise usage.UsageError("--admin-token must not be empty")
        admin = self["admin-endpoint"]
        if admin is None or self["admin-token"] is not None or not admin.startswith("tcp"):
            return  # off, guarded, or a unix socket (its file mode guards it)
        from twisted.internet import reactor

        endpoint = server_endpoint(reactor, admin)
        interface = tcp_address(endpoint)[1] if isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)) else ""
        if not is_loopback(interface):
            raise usage.UsageError(
                f"--admin-http {self['admin-http']!r} is reachable from other machines and shows event "
                "contents: give --admin-token-file PATH (or --admin-token TOKEN), or bind a loopback "
                "address (127.0.0.1:PORT)")


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    set_level(options["level"])
    descriptors_at_start()
    dsn: DSN = options["parsed-dsn"]
    if options["dsn-on-command-line"]:
        log.warn("--dsn carries a password, which every local user can read (ps, /proc/PID/cmdline): "
                 "put the DSN in a file only you can read (chmod 600) and pass --dsn-file PATH, "
                 "or set {env}", env=DSN_ENV)
    # What a restart beside a process still running finds, said in one line
    # each before anything else happens: the address, the spool.
    for description in filter(None, (options["endpoint"], options["admin-endpoint"])):
        taken = address_taken(reactor, description)
        if taken:
            raise SystemExit(f"track: {taken}")
    spool_lock = None
    if options["spool-dir"]:
        try:
            spool_lock = DirectoryLock(options["spool-dir"]).acquire()
        except SpoolLocked as e:
            raise SystemExit(f"track: {e}") from None
    fitted = prepare_database(dsn)
    if fitted is None and not options["spool-dir"]:
        raise SystemExit(f"track: cannot use database {dsn.redacted()}: unreachable, and no spool")
    if options["workers"] > 1:
        # Migrated once, here; each worker then finds the schema up to date.
        admin = options["admin-endpoint"]
        pool = WorkerPool(options["workers"], options["endpoint"], options, reactor,
                          shutdown_timeout=max(options["request-timeout"], 1.0), feed=admin is not None)
        pool.spool_lock = spool_lock  # the workers lock worker-N beneath it
        if admin is None:
            return pool
        # The parent serves the admin listener, from the workers' shared files.
        top = MultiService()  # type: ignore[no-untyped-call]
        pool.setServiceParent(top)  # type: ignore[no-untyped-call]
        about = About(__version__, dsn.redacted(), time.time())
        view = SharedView(about, pool.state, pool.metrics_dir, options["admin-keep"], pool.restarts)
        AdminService(admin, view, reactor, options["admin-host"], options["admin-token"]).setServiceParent(top)  # type: ignore[no-untyped-call]
        return top
    return build_service(options, reactor, fitted, spool_lock)


def outage_wait(seconds: float, dsn: DSN) -> float:
    """--outage-wait, but never shorter than a multi-host DSN's failover
    timeout: a write going round the hosts (or a cluster reconfiguring after
    losing a node) is given that long before it counts as an outage."""
    if seconds and len(dsn.hosts) > 1:
        return max(seconds, dsn.timeouts.failover)
    return seconds


def build_service(options: Options, reactor: Any, fitted: dict[str, Any] | None,
                  spool_lock: DirectoryLock | None = None) -> TrackService:
    """The one way the parts are wired, for twistd and the tests alike:
    storage, then the pipeline (writer, spool, batcher), then the HTTP
    edge.  `fitted` is prepare_database's answer (None: not reachable yet);
    `spool_lock` the spool directory's lock, if already taken."""
    dsn: DSN = options["parsed-dsn"]
    dialect = dialect_for(dsn)
    spool = None
    if options["spool-dir"]:
        spool = Spool(options["spool-dir"], options["spool-max-bytes"], reactor, lock=spool_lock)
        spool.open()
        if fitted is not None:
            save_limits(spool.directory, fitted)
    # One dict, shared by the validator and the spool's replay, refitted in
    # place if the database first appears after start-up (its subscribers,
    # such as the OpenAPI document, are told).
    if fitted:
        tables = fitted
    else:
        assert spool is not None, "makeService refuses an unreachable database without a spool"
        tables = load_limits(spool.directory)
    event_types = KindTables(tables)
    if spool is not None:  # the limits to validate with if the next start finds no database
        directory = spool.directory
        event_types.subscribe(lambda refitted: save_limits(directory, dict(refitted)))
    store = Store(dialect)
    # forget --suppress: read now (when the database is there) and every 10 s.
    suppression = Suppression(initial_suppression(dialect) if fitted is not None else frozenset())

    def database_appeared() -> Any:
        d = deferToThreadPool(reactor, reactor.getThreadPool(), migrate_on_own_connection, dialect)

        def fitted_now(result: Any) -> None:
            done, fresh = result
            log_migrations(dsn, done)
            event_types.refit(fresh)  # its subscribers: the OpenAPI document, the saved limits

        return d.addCallback(fitted_now)

    writer = Writer(
        store,
        spool,
        reactor,
        event_types,
        database_up=fitted is not None,
        on_up=None if fitted is not None else database_appeared,
        outage_wait=outage_wait(options["outage-wait"], dsn),
    )
    metrics = Metrics()
    batcher = Batcher(
        writer.insert,
        reactor,
        batch_size=options["batch-size"],
        min_batch=options["min-batch"],
        flush_interval=options["flush-interval"] / 1000.0,
        max_pending=options["max-pending"],
        on_flushed=metrics.flushed,
        insert_together=writer.insert_atomic,
    )
    metrics.watch(lambda: batcher.pending, lambda: writer.up, spool)
    # The latest events for the admin page: kept only when it is on (here,
    # or in the parent of --workers, which says so in FEED_ENV).
    admin = options["admin-endpoint"]
    recent = Recent(options["admin-keep"]) if admin is not None or os.environ.get(FEED_ENV) else None
    health: Health = ProcessHealth(writer)
    extra: list[Service] = [SuppressionRefresh(suppression, store, reactor)]
    state = os.environ.get(STATE_ENV)
    parent = parent_pid()
    if parent is not None:  # a worker of --workers N: shut down when the parent is gone
        extra.append(ParentWatch(parent, reactor))
    if state:  # a worker of --workers N: report to the parent's directory
        shared = SharedHealth(health, state, int(os.environ.get(WORKER_ENV, "0")), time.time())
        health = shared
        extra.append(WorkerReport(shared, metrics.refresh, recent, event_types, reactor))
    elif admin is not None:
        about = About(__version__, dsn.redacted(), time.time())
        local = LocalView(about, metrics, health, recent or Recent(options["admin-keep"]), event_types)
        extra.append(AdminService(admin, local, reactor, options["admin-host"], options["admin-token"]))
    cors = CORS(options["cors-origin"])
    app = TrackApp(
        batcher,
        reactor,
        event_types,
        options["proxies"],
        cors,
        options["max-body"],
        health=health,
        metrics=metrics,
        max_batch=options["max-batch"],
        max_batch_body=options["max-batch-body"],
        tap=recent or NO_TAP,
        rate_limiter=RateLimiter(options["rate-limit"], reactor) if options["rate-limit"] else None,
        anonymize=Anonymizer(options["anonymize-ip"] or 0, options["anonymize-ipv6"] or 0),
        suppression=suppression,
        event_time=EventTime(options["max-clock-skew"], options["max-event-age"]),
    )
    max_connections = options["max-connections"] or default_max_connections()
    site = TrackSite(
        app.resource(),
        options["access-log"],
        options["request-timeout"] or None,
        body_limit=lambda path: (
            options["max-batch-body"] if is_batch_path(path) else options["max-body"]
        ),
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
        options["endpoint"],
        site,
        batcher,
        writer,
        store,
        reactor,
        shutdown_timeout=max(options["request-timeout"], 1.0),
        cpuprofile=options["cpuprofile"],
        extra=extra,
    )
