"""The client's address for RemoteIP, honouring X-Forwarded-For only from
proxies the operator trusts (`--trusted-proxy`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks or single addresses; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in texts)


def _trusted(host: str, proxies: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in proxies)


def client_ip(peer: str | None, forwarded_for: bytes | None, proxies: Sequence[Network]) -> str:
    """The first address, walking X-Forwarded-For from the right, that is not
    a trusted proxy.  A peer on a UNIX socket (`peer` None) is a local proxy
    and is trusted.  Spoofed entries left of an untrusted hop are ignored."""
    if peer is not None and not (proxies and _trusted(peer, proxies)):
        return peer
    if not forwarded_for:
        return peer or ""
    hops = [h.strip() for h in forwarded_for.decode("latin-1").split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: stop trusting the header here
        if not _trusted(hop, proxies):
            return hop
        peer = hop
    return peer or ""
