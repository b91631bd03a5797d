"""What a process is told: its `Config` (every option, typed and checked
once, by track/run/options.py) and its role (standalone, a worker of
`--workers N`, or their parent).

Each field of `Config` names the options it comes from and says how a
`--workers` child receives it: handed on unchanged (`_same`), changed for
the child (its own spool directory, the inherited socket...), or kept by
the parent (the admin listener).  `worker_args` generates a child's argv
from these declarations alone, so an option is either given to the workers
or said not to be, never forgotten (track/test/run/test_config.py holds the
round trip: parent's Config -> child's argv -> child's Config).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import LogLevel

from track.run.secrets import WORKER_DSN_FD
from track.storage.dsn import DSN
from track.web.clients.clientip import Network

# How a field reaches a worker: its value (and the worker it is for) as
# command-line arguments of `twistd track`.
Render = Callable[[Any, "Worker"], list[str]]

WORKER_HTTP = "systemd:domain=INET:index=0"  # the socket the parent binds, inherited as fd 3


def _arguments(name: str, value: Any) -> list[str]:
    """`value` as the option `--name` spells it: a flag when a bool, once
    per item when a tuple, nothing when None (the option's default)."""
    if value is None or value is False:
        return []
    if value is True:
        return [f"--{name}"]
    if isinstance(value, tuple):
        return [f"--{name}={item}" for item in value]
    return [f"--{name}={value}"]


def _same(name: str) -> Render:
    """Handed on unchanged."""
    return lambda value, worker: _arguments(name, value)


def _parent_only(value: Any, worker: Worker) -> list[str]:
    """Kept by the parent: the child does not get it."""
    return []


def _inherited_socket(value: str, worker: Worker) -> list[str]:
    return [f"--http={WORKER_HTTP}"]


def _one_process(value: int, worker: Worker) -> list[str]:
    return ["--workers=1"]


def _dsn_pipe(value: str | None, worker: Worker) -> list[str]:
    return [] if value is None else [f"--dsn-file=/dev/fd/{WORKER_DSN_FD}"]


def _level(value: LogLevel, worker: Worker) -> list[str]:
    return [f"--log-level={value.name}"]


def _own_profile(value: str | None, worker: Worker) -> list[str]:
    return [] if value is None else [f"--cpuprofile={value}.{worker.index}"]


def _own_spool(value: str, worker: Worker) -> list[str]:
    return [f"--spool-dir={os.path.join(value, f'worker-{worker.index}') if value else ''}"]


def option(*names: str, worker: Render | None = None) -> dict[str, Any]:
    """A field's metadata: the options it is read from (the first is the
    one a worker's argv uses), and how a worker gets it (default: the same)."""
    return {"options": names, "worker": worker or _same(names[0])}


@dataclass(frozen=True)
class Config:
    """Every option of `twistd track`, typed and checked (made only by
    `Options`, track/run/options.py, where each one's help text lives)."""

    # Where to listen: the parent binds --http and its children share that
    # socket; only the parent serves the admin listener (from the
    # children's shared files), so only it needs the token and hosts.
    endpoint: str = field(metadata=option("http", worker=_inherited_socket))
    admin_endpoint: str | None = field(metadata=option("admin-http", worker=_parent_only))
    admin_token: str | None = field(metadata=option("admin-token", "admin-token-file", worker=_parent_only))
    admin_hosts: tuple[str, ...] = field(metadata=option("admin-host", worker=_parent_only))
    admin_keep: int = field(metadata=option("admin-keep"))
    workers: int = field(metadata=option("workers", worker=_one_process))

    # The database.  Its text goes to each child through a pipe only that
    # child inherits, never on a command line or in the environment; each
    # process parses it, and only the parent warns about a password in --dsn.
    dsn_text: str | None = field(metadata=option("dsn", "dsn-file", worker=_dsn_pipe))
    dsn: DSN = field(metadata=option(worker=_parent_only))
    dsn_password_on_command_line: bool = field(metadata=option(worker=_parent_only))

    # Logs and profiling (each worker its own profile file).
    level: LogLevel = field(metadata=option("log-level", "verbose", worker=_level))
    access_log: bool = field(metadata=option("access-log"))
    cpuprofile: str | None = field(metadata=option("cpuprofile", worker=_own_profile))

    # The pipeline: batching, the spool (each worker its own directory), outages.
    batch_size: int = field(metadata=option("batch-size"))
    min_batch: int = field(metadata=option("min-batch"))
    flush_interval_ms: float = field(metadata=option("flush-interval"))
    max_pending: int = field(metadata=option("max-pending"))
    spool_dir: str = field(metadata=option("spool-dir", worker=_own_spool))
    spool_max_bytes: int = field(metadata=option("spool-max-bytes"))
    outage_wait: float = field(metadata=option("outage-wait"))

    # The HTTP edge.
    request_timeout: float = field(metadata=option("request-timeout"))
    max_body: int = field(metadata=option("max-body"))
    max_batch: int = field(metadata=option("max-batch"))
    max_batch_body: int = field(metadata=option("max-batch-body"))
    max_connections: int | None = field(metadata=option("max-connections"))
    trusted_proxies: tuple[Network, ...] = field(metadata=option("trusted-proxy"))
    cors_origins: tuple[str, ...] = field(metadata=option("cors-origin"))
    rate_limit: float = field(metadata=option("rate-limit"))
    anonymize_ip: int | None = field(metadata=option("anonymize-ip"))
    anonymize_ipv6: int | None = field(metadata=option("anonymize-ipv6"))
    max_clock_skew: float = field(metadata=option("max-clock-skew"))
    max_event_age: float = field(metadata=option("max-event-age"))

    # The event kinds served: a file declaring them (None: the original four).
    events: str | None = field(metadata=option("events"))

    @property
    def shutdown_timeout(self) -> float:
        """How long a stop waits for connections to finish their answers."""
        return max(self.request_timeout, 1.0)


@dataclass(frozen=True)
class Standalone:
    """One process that serves --http (and --admin-http) itself."""


@dataclass(frozen=True)
class Parent:
    """The parent of `--workers N`: binds --http, starts and restarts the
    workers, and serves --admin-http from the files they share."""


@dataclass(frozen=True)
class Worker:
    """A worker of `--workers N`, told so by its parent on its command line
    (options that --help does not list: track/run/options.py)."""

    index: int  # 0 to N-1: its spool directory, its metrics label
    state: str  # the parent's directory where workers report (track/admin/shared.py)
    parent: int  # the parent's pid: the worker ends when it is gone (track/run/orphan.py)
    feed: bool = False  # the parent serves the admin page: keep the latest events

    @property
    def metrics_dir(self) -> str:
        """prometheus_client's multiprocess directory (the parent also puts
        it in PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads)."""
        return metrics_directory(self.state)

    def args(self) -> list[str]:
        return [f"--worker-index={self.index}", f"--worker-state={self.state}",
                f"--worker-parent={self.parent}", *(["--worker-feed"] if self.feed else [])]


Role = Standalone | Parent | Worker


def metrics_directory(state: str) -> str:
    """Where, in the parent's directory, the workers keep their metrics files."""
    return os.path.join(state, "metrics")


def worker_args(config: Config, worker: Worker) -> list[str]:
    """The `twistd track` options of one worker, generated from every field
    of the parent's Config as that field declares, then the worker's role."""
    args: list[str] = []
    for each in dataclasses.fields(Config):
        render: Render = each.metadata["worker"]
        args += render(getattr(config, each.name), worker)
    return [*args, *worker.args()]
