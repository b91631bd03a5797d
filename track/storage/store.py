"""The connection pool and the one write track does: a batch of rows per table.

Inserts run on adbapi's pool threads (track.storage.transactions: the
INSERT, and what follows a refused row).  What a failure means (refused
row, outage, bug) is the dialect's decision.

With a multi-host DSN, a write that finds its host unavailable is tried
again at once on the next host (track.storage.hosts), so the events in flight
neither fail nor go to the spool; only when no host takes it does the write
fail with Unavailable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from track.fields.kinds import Kind
from track.logs import Logger
from track.storage.dialect import Dialect
from track.storage.hosts import Address, Hosts, HostWatch
from track.storage.transactions import Transactions
from track.types import (
    BatchRefusal,
    InternalError,
    Outcome,
    Row,
    Statement,
    Unavailable,
    Verdict,
)

log = Logger(namespace="track.store")

MYSQL_POOL_THREADS = 4
# With several hosts: the pause before a write goes round them all again.
ROUND_PAUSE = 0.5
_T = TypeVar("_T")


class Pool(Protocol):
    """What track uses of adbapi's ConnectionPool, typed here because
    Twisted leaves twisted.enterprise.adbapi unannotated."""

    def runWithConnection(self, func: Callable[..., _T], *args: Any, **kw: Any) -> Deferred[_T]: ...
    def close(self) -> None: ...


# ConnectionPool as a typed constructor (structurally checked against Pool).
_new_pool: Callable[..., Pool] = ConnectionPool


class _Raised:
    """What a pool-thread function raised, carried back as its result
    (with its traceback, which raising it again extends)."""

    def __init__(self, exception: Exception) -> None:
        self.exception = exception


class _Target:
    """The host a pool thread opens a new connection to: the one in use.
    Read on pool threads; `Hosts.current` is only ever replaced (an int),
    on the reactor thread."""

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts

    def __call__(self) -> Address:
        return self.hosts.addresses[self.hosts.current]


def _guarded(conn: Any, address: Address | None, work: Callable[..., _T], *args: Any) -> _T | _Raised:
    try:
        if address is not None and ((conn.host, conn.port) != address or not conn.open):
            conn.reopen(*address)  # checked on connect (track.storage.mysql.driver)
        return work(conn, *args)
    except Exception as e:
        return _Raised(e)


def _reraise(result: _T | _Raised) -> _T:
    if isinstance(result, _Raised):
        raise result.exception
    return result


class Store:
    """Writes batches of event rows through an adbapi ConnectionPool."""

    def __init__(self, dialect: Dialect, clock: Any = None) -> None:
        self.dialect = dialect
        self.hosts = Hosts(dialect.hosts())
        self._target = _Target(self.hosts) if self.hosts.many else None
        args, kwargs = dialect.pool_args(self._target)
        kwargs.setdefault("cp_min", 1)
        kwargs.setdefault("cp_max", MYSQL_POOL_THREADS)
        self.pool = _new_pool(*args, cp_reconnect=True, cp_noisy=False, **kwargs)
        self._statements: dict[tuple[str, tuple[str, ...]], Statement] = {}
        # Called on the pool thread after a dropped connection was opened
        # again (counted and summarized, never logged once per reconnect).
        self.on_reconnect: Callable[[], None] = lambda: None
        self._watch: HostWatch | None = None
        if self.hosts.many:
            if clock is None:
                from twisted.internet import reactor as clock
            self._watch = HostWatch(self.hosts, dialect.check_host, clock)
        self._clock = clock
        self.transactions = Transactions(dialect, lambda: self.on_reconnect())

    def statement(self, kind: Kind) -> Statement:
        """The INSERT for `kind`'s table and columns, built once for each
        (a SIGHUP may serve a kind with more columns, while rows of its
        previous table are still on their way)."""
        key = (kind.table, kind.columns)
        stmt = self._statements.get(key)
        if stmt is None:
            q = self.dialect.quote
            stmt = self._statements[key] = Statement(
                f"INSERT INTO {q(kind.table)} ({', '.join(q(c) for c in kind.columns)}) VALUES ",
                "(" + ", ".join([self.dialect.placeholder] * len(kind.columns)) + ")",
                self.dialect.on_duplicate(),
            )
        return stmt

    def insert(self, kind: Kind, rows: Sequence[Row]) -> Deferred[Outcome | None]:
        """Commit `rows`; fires None if all were stored, else a per-row outcome.

        Fails with Unavailable when the database could not take the batch,
        or InternalError for anything else.
        """
        d = self._on_any_host(self.transactions.write, self.statement(kind), rows)
        d.addErrback(self._classified, kind.table)
        return d

    def _on_any_host(self, work: Callable[..., _T], *args: Any, first: int | None = None,
                     adopt: bool = False) -> Deferred[_T]:
        """`work` on the host in use; with several hosts, when that one is
        unavailable, at once on the next (the first failure moves every
        later write there too), round the hosts again after ROUND_PAUSE,
        until one takes it or the DSN's failover_timeout has passed: a
        cluster stalls or refuses every node's commits for a moment while it
        drops a dead member, so one round of failures does not yet mean that
        no host takes writes.
        `adopt`: the host that worked becomes the one in use."""
        if self._watch is None:
            return self._run(work, *args)
        self._watch.start()
        return Deferred.fromCoroutine(self._failover(work, args, first, adopt))

    async def _failover(self, work: Callable[..., _T], args: tuple[Any, ...], first: int | None,
                        adopt: bool) -> _T:
        """The writes go on being sent to the host in use until one of them
        has failed there and then worked on another: that one moves them
        all (one switch, one log line, however many writes were in flight)."""
        hosts = self.hosts
        i = hosts.current if first is None else first
        tried: list[int] = []
        failed_here: dict[int, str] = {}
        # The probe (adopt) makes one pass: it is tried again with backoff.
        give_up = self._clock.seconds() + (0.0 if adopt else self.dialect.failover_seconds())
        while True:
            tried.append(i)
            try:
                result = await self._run(work, *args, host=i)
            except Exception as e:
                if self.dialect.classify(e) is not Verdict.OUTAGE:
                    raise
                failed_here[i] = str(e) or repr(e)
                hosts.failed(i, failed_here[i])
                following = hosts.next_to_try(i, tried)
                if following is None:
                    if self._clock.seconds() >= give_up:
                        raise
                    tried = []
                    await deferLater(self._clock, ROUND_PAUSE, lambda: None)
                    following = hosts.current if first is None else first
                i = following
                continue
            current = hosts.current
            if adopt:
                hosts.switch(i, "the first host of the DSN that takes writes")
            elif i != current and current in failed_here:
                hosts.switch(i, f"{hosts.states[current].label} is unavailable: {failed_here[current]}")
            hosts.worked(i)
            return result

    def hosts_health(self) -> dict[str, Any] | None:
        """The host in use (and, for a multi-host DSN, each host's state);
        None for a file or a UNIX socket."""
        if self.hosts.many:
            return self.hosts.health()
        if self.hosts.addresses:
            return {"database_host": self.hosts.states[0].label}
        return None

    def _run(self, work: Callable[..., _T], *args: Any, host: int | None = None) -> Deferred[_T]:
        """`work(conn, *args)` on a pool thread, its exception handed back as
        a value and raised again here.  adbapi's own handling of an
        exception (roll back, then `SELECT 1` on the same connection, then
        disconnect) logs two "Rollback failed" tracebacks for every write
        caught by an outage, a log flood that grows with the pool; our
        writes undo their own transactions, so adbapi only commits nothing,
        and a dead connection is replaced on its next use."""
        address = None if host is None else self.hosts.addresses[host]
        guarded: Deferred[_T | _Raised] = self.pool.runWithConnection(_guarded, address, work, *args)
        return guarded.addCallback(_reraise)

    def _classified(self, failure: Failure, table: str) -> Failure:
        """The one translation of a failed write: outage or bug, as the
        dialect decides (a refused row never gets here).  Raises Unavailable
        or InternalError, which the Deferred turns into the failure."""
        exc = failure.value
        assert exc is not None  # a Failure always holds its exception
        if isinstance(exc, (Unavailable, InternalError)):
            return failure
        if self.dialect.classify(exc) is Verdict.OUTAGE:
            log.warn("could not write {table}: {error}", table=table, error=repr(exc))
            raise Unavailable(repr(exc))
        log.failure("unexpected failure writing {table}; the requests get a 500", failure, table=table)
        raise InternalError(repr(exc))

    def insert_atomic(self, groups: Sequence[tuple[Kind, Sequence[Row]]]) -> Deferred[list[BatchRefusal] | None]:
        """Commit every group in one transaction, or nothing.

        Fires None when all are stored, else (group, row, error) for every row
        the database refused (and nothing is kept).  Fails with Unavailable.
        """
        work = [(self.statement(event), rows) for event, rows in groups]
        d = self._on_any_host(self.transactions.write_atomic, work)
        d.addErrback(self._classified, ", ".join(event.table for event, _ in groups))
        return d

    def ping(self) -> Deferred[None]:
        """Succeeds when the database takes writes (reconnecting a dropped
        connection): a server that answers but is read-only is still down.
        With several hosts, the first of the DSN that takes writes is used."""
        return self._on_any_host(self.transactions.ping, first=0, adopt=True)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        self.pool.close()
