"""`--http`: the original's ":8080" and "host:port" forms, a bare port, or any
Twisted endpoint description, all turned into an endpoint description.

The short forms listen with a backlog of 1024 rather than Twisted's 50: when
hundreds of clients connect at once, a full accept queue makes the kernel
drop handshakes, and those clients wait a second or more for a retry."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

# serverFromString(reactor, description), with the type its documentation
# gives it (Twisted leaves it unannotated).
server_endpoint: Callable[[Any, str], IStreamServerEndpoint] = serverFromString

_PORT = re.compile(r"^:?([0-9]{1,5})$")
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]+)):(?P<port>[0-9]{1,5})$")
# Endpoint types whose descriptions would otherwise look like "host:port".
_ENDPOINT_TYPES = {"tcp", "tcp6", "unix", "ssl", "systemd", "le", "lets", "onion"}
BACKLOG = 1024


def _escape(host: str) -> str:
    return host.replace(":", r"\:")


def endpoint_description(text: str) -> str:
    """Map an --http value to a description for serverFromString."""
    text = text.strip()
    m = _PORT.match(text)
    if m:
        return f"tcp:{_port(m.group(1))}:backlog={BACKLOG}"
    m = _HOST_PORT.match(text)
    if m and (m.group("v6") or m.group("host").lower() not in _ENDPOINT_TYPES):
        port = _port(m.group("port"))
        if m.group("v6"):
            return f"tcp6:{port}:backlog={BACKLOG}:interface={_escape(m.group('v6'))}"
        return f"tcp:{port}:backlog={BACKLOG}:interface={m.group('host')}"
    return text


def _port(text: str) -> int:
    port = int(text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return port


def admin_endpoint_description(text: str) -> str:
    """Map an --admin-http value: as --http, except that a bare port (8081
    or :8081) binds 127.0.0.1 only, since the admin page shows event
    contents.  Any other interface must be named."""
    m = _PORT.match(text.strip())
    if m:
        return f"tcp:{_port(m.group(1))}:interface=127.0.0.1"
    return endpoint_description(text)


def address_taken(reactor: Any, description: str) -> str | None:
    """Why a TCP `description` cannot be listened on now (one line naming the
    address, e.g. another process holds it), or None.

    Checked before anything starts, so that a restart beside a process
    still holding the port ends with this line rather than a traceback; the
    real bind happens later, where it always did."""
    from twisted.internet.abstract import isIPv6Address
    from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint

    try:
        endpoint = server_endpoint(reactor, description)
    except Exception:  # endpoint parsers raise all sorts; Options already checked it
        return None
    if not isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
        return None
    port, interface = endpoint._port, endpoint._interface  # see workers.tcp_address
    if not port:
        return None
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    host = interface or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's own TCP ports
        try:
            sock.bind((host, port))
        except OSError as e:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return f"cannot listen on {shown}: {e.strerror or e}"
    return None
