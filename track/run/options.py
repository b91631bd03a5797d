"""`twistd track`'s options: each one's help text, and the one place they
are checked.  `Options.parseOptions` ends with `config` (a frozen Config,
track/run/config.py) and `role` (what this process is: standalone, the
parent of --workers, or one of its workers).

A worker learns it is one from options its parent gives it (--worker-*),
which --help does not list: they are for the parent alone to write.
"""

from __future__ import annotations

import os
import sys
from typing import ClassVar

from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.python import usage

from track import __version__
from track.admin.recent import KEEP
from track.events.files import served_kinds
from track.events.subset import EventsFileError
from track.fields.eventtime import DEFAULT_MAX_CLOCK_SKEW, DEFAULT_MAX_EVENT_AGE
from track.logs import parse_level
from track.pipeline.batcher import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MIN_BATCH,
    GATHER_SECONDS,
)
from track.pipeline.writer import DEFAULT_OUTAGE_WAIT
from track.run.accepting import RESERVED_DESCRIPTORS
from track.run.config import Config, Parent, Role, Standalone, Worker
from track.run.listen import admin_endpoint_description, endpoint_description, server_endpoint
from track.run.secrets import DSN_ENV, SecretError, choose_dsn, is_loopback, read_secret_file
from track.run.workers import tcp_address
from track.spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES
from track.storage.dsn import DSNError, parse_dsn
from track.web.bodies.batchbody import DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH_BODY
from track.web.clients.anonymize import DEFAULT_V6_SEGMENTS
from track.web.clients.clientip import parse_networks
from track.web.http.site import DEFAULT_MAX_BODY

# Set by the parent of --workers on each worker's command line (Worker.args).
HIDDEN = frozenset({"worker-index", "worker-state", "worker-parent", "worker-feed"})


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


def _in_range(name: str, text: str | None, most: int) -> int | None:
    if text is None:
        return None
    value = _positive_int(name, text)
    if value > most:
        raise usage.UsageError(f"--{name} must be 1 to {most}, not {text!r}")
    return value


class Options(usage.Options):
    """The options, their help, their checks (postOptions)."""

    config: Config  # set by parseOptions
    role: Role
    synopsis = "[options]"
    longdesc = (
        "Collect analytics events over HTTP and store them in MySQL/MariaDB, "
        "or in an embedded SQLite file when no --dsn is given. A 201 is sent "
        "only after the event's row is committed."
    )
    optFlags: ClassVar[list[list[str | None]]] = [
        ["verbose", "v", "Debug logging (same as --log-level debug)."],
        ["access-log", None, "Log one line per HTTP request."],
        # Hidden (HIDDEN): from the parent of --workers.
        ["worker-feed", None, "This worker's parent serves the admin page: keep the latest events."],
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
        ["events", None, None,
         "A JSON (or YAML) file declaring event kinds to serve beside (or instead of) the original four; "
         "checked at start and re-read on SIGHUP. `python -m track.events original` prints the original's."],
        # Hidden (HIDDEN): from the parent of --workers.
        ["worker-index", None, None, "This worker's number, 0 to N-1."],
        ["worker-state", None, None, "The parent's directory where its workers report."],
        ["worker-parent", None, None, "The parent's pid."],
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
        """Check every option once, in the order their errors are reported,
        and make `config` and `role` of them."""
        try:
            endpoint = endpoint_description(self["http"])
            from twisted.internet import reactor

            server_endpoint(reactor, endpoint)
        except Exception as e:  # endpoint parsers raise all sorts
            raise usage.UsageError(f"--http {self['http']!r} is not usable: {e}") from None
        admin_endpoint = None
        if self["admin-http"] is not None:
            try:
                admin_endpoint = admin_endpoint_description(self["admin-http"])
                from twisted.internet import reactor

                server_endpoint(reactor, admin_endpoint)
            except Exception as e:  # endpoint parsers raise all sorts
                raise usage.UsageError(f"--admin-http {self['admin-http']!r} is not usable: {e}") from None
        admin_token = self._admin_token(admin_endpoint)
        try:
            dsn_text = choose_dsn(self["dsn"], self["dsn-file"], os.environ)
        except SecretError as e:
            raise usage.UsageError(f"--dsn-file: {e}") from None
        source = "--dsn-file" if self["dsn-file"] is not None else "--dsn" if self["dsn"] is not None else DSN_ENV
        try:
            dsn = parse_dsn(dsn_text)
        except DSNError as e:
            raise usage.UsageError(f"{source}: {e}") from None
        try:
            level = parse_level("debug" if self["verbose"] else self["log-level"])
        except ValueError as e:
            raise usage.UsageError(f"--log-level: {e}") from None
        try:
            proxies = parse_networks(self.get("trusted-proxy", []))
        except ValueError as e:
            raise usage.UsageError(f"--trusted-proxy: {e}") from None
        batch_size = _positive_int("batch-size", self["batch-size"])
        min_batch = _positive_int("min-batch", self["min-batch"])
        max_pending = _positive_int("max-pending", self["max-pending"])
        max_body = _positive_int("max-body", self["max-body"])
        max_batch = _positive_int("max-batch", self["max-batch"])
        admin_keep = _positive_int("admin-keep", self["admin-keep"])
        max_connections = None
        if self["max-connections"] is not None:
            max_connections = _positive_int("max-connections", self["max-connections"])
        workers = _positive_int("workers", self["workers"])
        if workers > 1 and not endpoint.startswith("tcp"):
            raise usage.UsageError("--workers needs a TCP --http (a port or host:port)")
        max_batch_body = _positive_int("max-batch-body", self["max-batch-body"])
        spool_max_bytes = _positive_int("spool-max-bytes", self["spool-max-bytes"])
        flush_interval = _non_negative_float("flush-interval", self["flush-interval"])
        request_timeout = _non_negative_float("request-timeout", self["request-timeout"])
        rate_limit = _non_negative_float("rate-limit", self["rate-limit"])
        anonymize_ip = _in_range("anonymize-ip", self["anonymize-ip"], 4)
        anonymize_ipv6 = _in_range("anonymize-ipv6", self["anonymize-ipv6"], 8)
        if anonymize_ip and anonymize_ipv6 is None:
            anonymize_ipv6 = DEFAULT_V6_SEGMENTS
        max_clock_skew = _non_negative_float("max-clock-skew", self["max-clock-skew"])
        max_event_age = _non_negative_float("max-event-age", self["max-event-age"])
        outage_wait = _non_negative_float("outage-wait", self["outage-wait"])
        events = self._events()
        self.config = Config(
            endpoint=endpoint,
            admin_endpoint=admin_endpoint,
            admin_token=admin_token,
            admin_hosts=tuple(self.get("admin-host", [])),
            admin_keep=admin_keep,
            workers=workers,
            dsn_text=dsn_text,
            dsn=dsn,
            # A password typed on the command line: said once at start (makeService).
            dsn_password_on_command_line=self["dsn"] is not None and bool(dsn.password),
            level=level,
            access_log=bool(self["access-log"]),
            cpuprofile=self["cpuprofile"],
            batch_size=batch_size,
            min_batch=min_batch,
            flush_interval_ms=flush_interval,
            max_pending=max_pending,
            spool_dir=self["spool-dir"],
            spool_max_bytes=spool_max_bytes,
            outage_wait=outage_wait,
            request_timeout=request_timeout,
            max_body=max_body,
            max_batch=max_batch,
            max_batch_body=max_batch_body,
            max_connections=max_connections,
            trusted_proxies=proxies,
            cors_origins=tuple(self.get("cors-origin", [])),
            rate_limit=rate_limit,
            anonymize_ip=anonymize_ip,
            anonymize_ipv6=anonymize_ipv6,
            max_clock_skew=max_clock_skew,
            max_event_age=max_event_age,
            events=events,
        )
        self.role = self._role(workers)

    def _events(self) -> str | None:
        """--events as an absolute path (a SIGHUP re-reads it wherever the
        process runs), after reading and checking the file once."""
        path: str | None = self["events"]
        if path is None:
            return None
        try:
            served_kinds(path)
        except EventsFileError as e:
            raise usage.UsageError(f"--events: {e}") from None
        return os.path.abspath(path)

    def _role(self, workers: int) -> Role:
        """A worker when its parent said so (--worker-*), the parent when
        --workers asks for more than one process, else standalone."""
        given = {name: self[name] for name in ("worker-index", "worker-state", "worker-parent")}
        if any(value is not None for value in given.values()) or self["worker-feed"]:
            missing = [f"--{name}" for name, value in given.items() if value is None]
            if missing:
                raise usage.UsageError(f"a worker needs {', '.join(missing)} (given by its parent)")
            index = self["worker-index"]
            if not index.isascii() or not index.isdigit():
                raise usage.UsageError(f"--worker-index must be an integer >= 0, not {index!r}")
            return Worker(int(index), self["worker-state"], _positive_int("worker-parent", self["worker-parent"]),
                          bool(self["worker-feed"]))
        return Parent() if workers > 1 else Standalone()

    def getUsage(self, width: int | None = None) -> str:
        """--help, without the options only a parent gives its workers."""
        every = self.longOpt
        self.longOpt = [name for name in every if name.rstrip("=") not in HIDDEN]
        try:
            return super().getUsage(width)
        finally:
            self.longOpt = every

    def _admin_token(self, admin: str | None) -> str | None:
        """The admin token, from the option or its file; none is refused
        when the admin listener is reachable from other machines."""
        token: str | None = self["admin-token"]
        if token is not None and self["admin-token-file"] is not None:
            raise usage.UsageError("give --admin-token or --admin-token-file, not both")
        if self["admin-token-file"] is not None:
            try:
                token = read_secret_file(self["admin-token-file"])
            except SecretError as e:
                raise usage.UsageError(f"--admin-token-file: {e}") from None
        elif token is not None and not token.strip():
            raise usage.UsageError("--admin-token must not be empty")
        if admin is None or token is not None or not admin.startswith("tcp"):
            return token  # off, guarded, or a unix socket (its file mode guards it)
        from twisted.internet import reactor

        endpoint = server_endpoint(reactor, admin)
        interface = tcp_address(endpoint)[1] if isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)) else ""
        if not is_loopback(interface):
            raise usage.UsageError(
                f"--admin-http {self['admin-http']!r} is reachable from other machines and shows event "
                "contents: give --admin-token-file PATH (or --admin-token TOKEN), or bind a loopback "
                "address (127.0.0.1:PORT)")
        return token


