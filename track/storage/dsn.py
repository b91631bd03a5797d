"""Data source names: the URL form, the original's Go form, and SQLite paths.

Parsing is kept apart from connecting so that a bad DSN is a usage error
before anything starts, and so that every message about a DSN can be
produced from a value whose password is already masked.
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

    def redacted(self) -> str:
        """A printable form that never shows the password."""
        if self.kind == "sqlite":
            return ("sqlite://" if self.path.startswith("/") else "sqlite:") + self.path
        auth = self.user + (":***" if self.password else "")
        where = (
            f"unix({self.unix_socket})"
            if self.unix_socket
            else f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        )
        return f"mysql://{auth}@{where}/{self.database}"

    def __str__(self) -> str:
        return self.redacted()


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
    host, port = _split_host_port(hostport)
    return DSN(
        kind="mysql",
        database=database,
        host=host,
        port=port,
        user=unquote(user),
        password=unquote(password),
        unix_socket=socket,
        params=params,
    )


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
        return DSN(
            kind="mysql",
            database=database,
            user=user,
            password=password,
            unix_socket=addr,
            params=params,
        )
    if net not in ("tcp", "tcp4", "tcp6"):
        raise DSNError(f"unsupported network {net!r} in DSN: use tcp or unix")
    host, port = _split_host_port(addr)
    return DSN(
        kind="mysql",
        database=database,
        host=host,
        port=port,
        user=user,
        password=password,
        params=params,
    )


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
