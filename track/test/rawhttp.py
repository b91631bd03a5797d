"""A raw TCP client for tests that must send malformed, huge, slow or
pipelined HTTP that no well-behaved client library would produce."""

from __future__ import annotations

import re
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, ITCPTransport
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


class RawClient(Protocol):
    """Collects everything the server sends until it closes the connection."""

    def __init__(self) -> None:
        self.received = b""
        self.connected_d: Deferred[RawClient] = Deferred()
        self.closed: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.connected_d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed.callback(self.received)

    def send(self, data: bytes) -> None:
        assert self.transport is not None, "send() before connectionMade()"
        self.transport.write(data)

    def abort(self) -> None:
        """Reset the connection, if it is still open (a test's cleanup)."""
        if self.transport is not None and not self.closed.called:
            cast(ITCPTransport, self.transport).abortConnection()

    def statuses(self) -> list[int]:
        return [int(m) for m in _STATUS.findall(self.received)]


@implementer(IHalfCloseableProtocol)
class HalfOpenClient(RawClient):
    """A client that keeps its side open after the server's FIN, as a
    plain socket does until it is closed: the server's lingering close (and
    any timer still running meanwhile) plays out in full."""

    def readConnectionLost(self) -> None:
        pass

    def writeConnectionLost(self) -> None:
        pass


def connect(port: int, client: RawClient | None = None) -> Deferred[RawClient]:
    client = client or RawClient()
    factory: ClientFactory[RawClient] = ClientFactory()
    factory.protocol = lambda: client
    reactor.connectTCP("127.0.0.1", port, factory)
    return client.connected_d


def request(path: str, body: bytes, headers: dict[str, Any] | None = None, close: bool = True) -> bytes:
    """One POST as raw bytes, with Content-Length unless headers say otherwise."""
    head = {"Host": "track.test", "Content-Type": "application/x-www-form-urlencoded"}
    head.update(headers or {})
    if "Transfer-Encoding" not in head and "Content-Length" not in head:
        head["Content-Length"] = str(len(body))
    if close:
        head.setdefault("Connection", "close")
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode() + body
