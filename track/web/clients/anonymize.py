"""Client addresses made anonymous before anything keeps them.

`--anonymize-ip N` zeroes the last N octets (8 bits each) of an IPv4
address and `--anonymize-ipv6 M` the last M 16-bit segments of an IPv6 one
(5 when only `--anonymize-ip` is given: the first 48 bits, the routing
prefix, are kept).  An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) follows
the IPv4 rule.  Text that is not an address (a client's own RemoteIP field)
is not kept at all.  A request with `Track-Anonymous: 1` (or a batch whose
JSON envelope says `"Anonymous": true`) keeps no address.
This runs where the row is made, so the spool, the dead letters, the live
page and the access log only ever see what is stored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from twisted.web.iweb import IRequest

from track.fields.kinds import Kind
from track.web.clients.clientip import Network, client_ip

ANONYMOUS_HEADER = b"track-anonymous"
DEFAULT_V6_SEGMENTS = 5


def wants_anonymity(value: bytes | None) -> bool:
    """The Track-Anonymous header's value asks for no address to be kept."""
    return value is not None and value.strip() == b"1"


def mark_anonymous(request: IRequest) -> None:
    """A batch whose JSON envelope says `"Anonymous": true` (a sendBeacon
    cannot set the header) is read from here on, by everything that keeps or
    shows an address, as if it had sent `Track-Anonymous: 1`."""
    request.requestHeaders.setRawHeaders(ANONYMOUS_HEADER, [b"1"])


class Anonymizer:
    """`anonymizer(address)`: the address with its last bits zeroed."""

    def __init__(self, v4_octets: int = 0, v6_segments: int = 0) -> None:
        self.v4_octets = v4_octets
        self.v6_segments = v6_segments
        self.active = bool(v4_octets or v6_segments)
        self._v4_mask = (1 << 32) - (1 << (8 * v4_octets))
        self._v6_mask = (1 << 128) - (1 << (16 * v6_segments))

    def __call__(self, text: str) -> str:
        if not self.active:
            return text
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return ""  # not an address: nothing of it can be kept safely
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is not None:
                return "::ffff:" + self._v4(mapped)
            return str(ipaddress.IPv6Address(int(address) & self._v6_mask))  # drops a %scope too
        return self._v4(address)

    def _v4(self, address: ipaddress.IPv4Address) -> str:
        return str(ipaddress.IPv4Address(int(address) & self._v4_mask))


class Addresses:
    """The client's address for each use: whole for rate limiting (in
    memory only), anonymised (or none) for what is stored."""

    def __init__(self, trusted_proxies: Sequence[Network], anonymize: Anonymizer) -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        self.anonymize = anonymize

    def client(self, request: IRequest) -> str:
        """The whole address, after --trusted-proxy: never stored."""
        peer: str | None = getattr(request.getClientAddress(), "host", None)  # type: ignore[no-untyped-call]
        if peer is not None and not self.trusted_proxies:
            return peer  # X-Forwarded-For is not believed: no need to read it
        forwarded: bytes | None = request.getHeader(b"x-forwarded-for")  # type: ignore[no-untyped-call]
        return client_ip(peer, forwarded, self.trusted_proxies)

    def stored(self, request: IRequest) -> str:
        """RemoteIP as it is stored (and spooled, and shown): anonymised, or
        none at all for a request with Track-Anonymous: 1."""
        if wants_anonymity(request.getHeader(ANONYMOUS_HEADER)):  # type: ignore[no-untyped-call]
            return ""
        address = self.client(request)
        return self.anonymize(address) if self.anonymize.active else address

    def scrub(self, kind: Kind, row: tuple[Any, ...], request: IRequest) -> tuple[Any, ...]:
        """A RemoteIP the client sent itself (session events) is treated as
        the connection's address is."""
        if kind.remote_ip_column or "RemoteIP" not in kind.columns:
            return row
        anonymous = wants_anonymity(request.getHeader(ANONYMOUS_HEADER))  # type: ignore[no-untyped-call]
        if not (anonymous or self.anonymize.active):
            return row
        i = kind.columns.index("RemoteIP")
        return (*row[:i], "" if anonymous else self.anonymize(row[i]), *row[i + 1:])

    def logged(self, request: IRequest) -> str:
        """The client as the access log names it: the peer, anonymised."""
        if wants_anonymity(request.getHeader(ANONYMOUS_HEADER)):  # type: ignore[no-untyped-call]
            return "-"
        peer = getattr(request.getClientAddress(), "host", None) or "-"  # type: ignore[no-untyped-call]
        return self.anonymize(peer) or "-" if self.anonymize.active else peer

    def shown_peer(self, peer: Any) -> Any:
        """A connection's peer as the live page may show it."""
        if not self.anonymize.active:
            return peer
        return _Shown(self.anonymize(str(getattr(peer, "host", ""))) or "-")


class _Shown:
    """Just the `host` of an address, which is all the live page reads."""

    def __init__(self, host: str) -> None:
        self.host = host
