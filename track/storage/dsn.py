"""Data source names: the URL form, the original's Go form, and SQLite paths.

Parsing is kept apart from connecting so that a bad DSN is a usage error
before anything starts, and so that every message about a DSN can be
produced from a value whose password is already masked.

A MySQL URL may list several hosts, as libpq and MySQL Connector/J take them:
`mysql://user:pass@h1:3306,h2:3306,h3:3306/db`; writes go to the first that
works (see track.storage.hosts).  The connect, read and write timeouts come
from the query (`connect_timeout=3&read_timeout=5&write_timeout=5`, seconds;
the Go driver's `timeout`, `readTimeout`, `writeTimeout` with units too;
`failover_timeout`, how long a write may go round the hosts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

DEFAULT_SQLITE_PATH = "track.sqlite3"
MYSQL_DEFAULT_PORT = 3306
_MYSQL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
# A URL scheme, told apart from the Go form's "user:password@..." by the "//".
_SCHEME = re.compile(r"^(?:(?i:sqlite)(?=:)|[A-Za-z][A-Za-z0-9+.-]*(?=://))")
# The charsets a DSN's `charset=` may name.  track always talks utf8mb4, so
# these only keep old configs working (the Go form's usual `charset=utf8`);
# anything else, above all gbk, big5, sjis, cp932 or gb18030, where a
# backslash can be the second byte of a character, is refused, not ignored.
ACCEPTED_CHARSETS = ("utf8", "utf8mb3", "utf8mb4")
# Seconds a connection may take to open, and a read or a write on it may
# wait: a node that stops answering costs at most these before track moves on
# to the next host (or the spool).
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 5.0
DEFAULT_WRITE_TIMEOUT = 5.0
# With several hosts, how long a write keeps going round them (a cluster
# refuses or stalls writes on every node for a moment while it drops a dead
# member) before it counts as an outage: the spool, or 503.
DEFAULT_FAILOVER_TIMEOUT = 10.0
# Timeout parameters and the name each stands for (URL spellings, and the
# Go driver's, which may carry a unit).
_TIMEOUT_PARAMS = {
    "connect_timeout": "connect", "timeout": "connect", "connectTimeout": "connect",
    "read_timeout": "read", "readTimeout": "read",
    "write_timeout": "write", "writeTimeout": "write",
    "failover_timeout": "failover",
}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s|m)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
# One host of a list: a name, an IPv4 address or a bracketed IPv6 one, and a port.
_HOST_ENTRY = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::\d+)?$")


@dataclass(frozen=True)
class Timeouts:
    """A MySQL connection's timeouts, in seconds."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT
    write: float = DEFAULT_WRITE_TIMEOUT
    failover: float = DEFAULT_FAILOVER_TIMEOUT


class DSNError(ValueError):
    """A DSN that cannot be used; the message never contains the password."""


@dataclass(frozen=True)
class DSN:
    """Where events are stored.  `kind` is "mysql" or "sqlite"."""

    kind: str
    database: str = ""
    host: str = "127.0.0.1"
    port: int = MYSQL_DEFAULT_PORT
    user: str = ""
    password: str = field(default="", repr=False)
    unix_socket: str | None = None
    path: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    # Every host of the DSN, in order of preference; the first is host:port.
    # Empty means just (host, port).
    others: tuple[tuple[str, int], ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def hosts(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of every host, the preferred one first."""
        return ((self.host, self.port), *self.others)

    def redacted(self) -> str:
        """A printable form that never shows the password."""
        if self.kind == "sqlite":
            return ("sqlite://" if self.path.startswith("/") else "sqlite:") + self.path
        auth = self.user + (":***" if self.password else "")
        where = (
            f"unix({self.unix_socket})"
            if self.unix_socket
            else ",".join(host_label(host, port) for host, port in self.hosts)
        )
        return f"mysql://{auth}@{where}/{self.database}"

    def __str__(self) -> str:
        return self.redacted()


def host_label(host: str, port: int) -> str:
    """host:port as a DSN writes it ([v6]:port for an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_dsn(text: str | None) -> DSN:
    """Parse any accepted DSN form; None or "" means the embedded default."""
    if not text:
        return DSN(kind="sqlite", path=DEFAULT_SQLITE_PATH)
    m = _SCHEME.match(text)
    scheme = m.group(0).lower() if m else ""
    if scheme == "sqlite":
        return _parse_sqlite(text)
    if scheme in _MYSQL_SCHEMES:
        return _parse_mysql_url(text)
    if scheme:
        raise DSNError(
            f"unsupported DSN scheme {scheme!r}: use mysql://, mariadb:// or sqlite:///"
        )
    return _parse_go_dsn(text)


def _parse_sqlite(text: str) -> DSN:
    rest = text[len("sqlite:") :]
    if rest.startswith("//"):
        # sqlite:///abs/path -> /abs/path ; sqlite://rel -> rel
        rest = rest[2:]
    path = unquote(rest.split("?", 1)[0])
    if not path or path == "/":
        raise DSNError("sqlite DSN has no file path: use sqlite:///path/to/file")
    return DSN(kind="sqlite", path=path)


def _parse_mysql_url(text: str) -> DSN:
    """scheme://[user[:password]@]host[:port]/database[?params].

    Split by hand rather than with urlsplit: a password may hold '/', '?',
    '#' or '@', and a parser error must never echo any part of it.
    """
    rest = text.split("://", 1)[1]
    listed = _host_list(rest)
    if listed is not None:
        return listed
    userinfo, at, hostpath = rest.rpartition("@")
    if not at:
        userinfo, hostpath = "", rest
    hostpath, _, query = hostpath.partition("?")
    hostport, _, database = hostpath.partition("/")
    user, _, password = userinfo.partition(":")
    params = _params(query)
    socket = params.pop("unix_socket", None) or None
    database = unquote(database)
    if not database:
        raise DSNError("MySQL DSN names no database: mysql://user:pass@host:3306/DATABASE")
    if "/" in database:
        raise DSNError(f"MySQL DSN database name {database!r} contains '/'")
    hosts = _host_entries(hostport)
    if socket and len(hosts) > 1:
        raise DSNError("a MySQL DSN with unix_socket names one server: leave out the other hosts")
    return _mysql_dsn(database, unquote(user), unquote(password), params, hosts, socket)


def _mysql_dsn(database: str, user: str, password: str, params: dict[str, str],
               hosts: list[tuple[str, int]], unix_socket: str | None = None) -> DSN:
    """A MySQL DSN of every form: its hosts in order, the first one preferred."""
    return DSN(
        kind="mysql",
        database=database,
        host=hosts[0][0],
        port=hosts[0][1],
        others=tuple(hosts[1:]),
        user=user,
        password=password,
        unix_socket=unix_socket,
        params=params,
        timeouts=_timeouts(params),
    )


def _host_list(rest: str) -> DSN | None:
    """A host list whose entries carry their own user or database
    (`u@h1:3306,v@h2:3306/db`, `h1/db1,h2/db2`, or whole URLs joined by
    commas): the same user and database everywhere is one multi-host DSN,
    anything else is refused.  None when `rest` is not such a list (a
    plain host list, or a password holding a comma), for the usual parse."""
    head, _, query = rest.partition("?")
    if "," not in head:
        return None
    entries = []
    for piece in head.split(","):
        piece = re.sub(r"^(?i:mysql|mariadb|mysql\+pymysql)://", "", piece)
        userinfo, at, hostpath = piece.rpartition("@")
        hostport, slash, database = hostpath.partition("/")
        if not _HOST_ENTRY.match(hostport) or "?" in database:
            return None
        entries.append((userinfo if at else None, database if slash else None, hostport))
    if not any(u is not None for u, _, _ in entries[1:]) and not any(d is not None for _, d, _ in entries[:-1]):
        return None  # user first, database last: the plain form
    users = {unquote(u.partition(":")[0]) for u, _, _ in entries if u is not None}
    databases = {unquote(d) for _, d, _ in entries if d is not None}
    passwords = {unquote(u.partition(":")[2]) for u, _, _ in entries if u is not None}
    if len(users) > 1 or len(databases) > 1 or len(passwords) > 1:
        what = " and ".join(name for name, values in (("users", users), ("databases", databases))
                            if len(values) > 1) or "passwords"
        # Databases are named; users never are: in `u:pa@ss,word@h/db` the
        # "user" of the second entry is the tail of a password.
        shown = sorted(databases) if len(databases) > 1 and len(users) <= 1 else []
        raise DSNError(
            f"the hosts of this DSN have different {what}{' ' + repr(shown) if shown else ''}: track "
            "writes to one database through any of its hosts, so list them as one DSN with one "
            "user and one database: mysql://user:pass@host1:3306,host2:3306,host3:3306/database "
            "(percent-encode '@' and ',' in a password: %40, %2C)"
        )
    userinfo = next((u for u, _, _ in entries if u is not None), "")
    database = next((d for _, d, _ in entries if d is not None), "")
    hosts = ",".join(hostport for _, _, hostport in entries)
    return _parse_mysql_url(f"mysql://{userinfo}{'@' if userinfo else ''}{hosts}/{database}"
                            + (f"?{query}" if query else ""))


_GO_ADDR = re.compile(r"^(?P<net>[A-Za-z0-9]*)(?:\((?P<addr>[^)]*)\))?$")


def _parse_go_dsn(text: str) -> DSN:
    """The go-sql-driver form: [user[:password]@][net[(addr)]]/dbname[?params]."""
    slash = text.rfind("/")
    if slash < 0:
        raise DSNError(
            "malformed DSN: expected mysql://user:pass@host:port/db, "
            "user:pass@tcp(host:port)/db or sqlite:///path"
        )
    head, tail = text[:slash], text[slash + 1 :]
    database, _, query = tail.partition("?")
    at = head.rfind("@")
    userinfo, netaddr = (head[:at], head[at + 1 :]) if at >= 0 else ("", head)
    user, _, password = userinfo.partition(":")
    m = _GO_ADDR.match(netaddr)
    if not m:
        raise DSNError(
            "malformed DSN address: expected tcp(host:port) or unix(/path/to/socket)"
        )
    net, addr = (m.group("net") or "tcp").lower(), m.group("addr") or ""
    if not database:
        raise DSNError("DSN names no database: user:pass@tcp(host:port)/DATABASE")
    params = _params(query)
    if net == "unix":
        if not addr:
            raise DSNError("unix() in DSN needs a socket path")
        return _mysql_dsn(database, user, password, params, [_split_host_port("")], unix_socket=addr)
    if net not in ("tcp", "tcp4", "tcp6"):
        raise DSNError(f"unsupported network {net!r} in DSN: use tcp or unix")
    return _mysql_dsn(database, user, password, params, _host_entries(addr))


def _params(query: str) -> dict[str, str]:
    """A MySQL DSN's parameters, all accepted and ignored, except a
    `charset` (the Go driver's comma-separated list of preferences too)
    naming one track would not talk: a usage error, never a silent switch."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    charset = params.get("charset", "")
    refused = [name for name in charset.split(",") if name.strip() and name.strip().lower() not in ACCEPTED_CHARSETS]
    if refused:
        raise DSNError(
            f"unsupported charset {refused[0].strip()!r} in DSN: track always talks utf8mb4 to the "
            f"database; use charset=utf8mb4 (or utf8) or leave charset out"
        )
    return params


def _timeouts(params: Mapping[str, str]) -> Timeouts:
    """The timeouts a DSN's query sets, the defaults for the others."""
    chosen: dict[str, float] = {}
    for name, value in params.items():
        which = _TIMEOUT_PARAMS.get(name)
        if which is None:
            continue
        m = _DURATION.match(value.strip())
        seconds = float(m.group(1)) * _UNIT[m.group(2)] if m else 0.0
        if not 0 < seconds <= 3600:
            raise DSNError(f"{name}={value!r} in DSN: give a number of seconds above 0 (like 5 or 2.5s)")
        chosen[which] = seconds
    return Timeouts(**chosen)


def _host_entries(hosts: str) -> list[tuple[str, int]]:
    """A comma-separated host list; an empty entry is a mistake, not localhost."""
    entries = hosts.split(",")
    if len(entries) > 1 and not all(e.strip() for e in entries):
        raise DSNError(f"empty host in the DSN's host list {hosts!r}")
    return [_split_host_port(entry) for entry in entries]


def _split_host_port(addr: str) -> tuple[str, int]:
    if not addr:
        return "127.0.0.1", MYSQL_DEFAULT_PORT
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif addr.count(":") == 1:
        host, port_text = addr.split(":")
    else:
        host, port_text = addr, ""
    if not port_text:
        return host or "127.0.0.1", MYSQL_DEFAULT_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DSNError(f"invalid port {port_text!r} in DSN")
    return host or "127.0.0.1", int(port_text)
