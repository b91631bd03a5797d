"""`--admin-http`: the admin listener and the rate sampler behind it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.web.server import Site
from zope.interface import implementer

from track.admin.guard import Guard
from track.admin.history import History
from track.admin.page import AdminApp
from track.admin.views import View
from track.logs import Logger

log = Logger(namespace="track.admin")


@implementer(IStreamServerEndpoint)
class _Logged:
    """Logs where the admin page is (with port 0: the port the kernel chose)."""

    def __init__(self, endpoint: IStreamServerEndpoint) -> None:
        self.endpoint = endpoint
        self.port: IListeningPort | None = None

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.endpoint.listen(protocolFactory).addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address: Any = port.getHost()
        host = getattr(address, "host", None)
        where = (f"http://{'[' + host + ']' if ':' in host else host}:{address.port}/" if host
                 else f"unix:{getattr(address, 'name', address)}")
        log.info("admin page on {where}", where=where)
        return port


class AdminService(MultiService):
    """The sampler, then the listener (stopped first)."""

    def __init__(self, description: str, view: View, clock: Any, hosts: Collection[str] = (),
                 token: str | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.history = History(view.counts, clock, tick=view.tick)
        self.app = AdminApp(view, self.history, clock)
        guarded = Guard(self.app.resource(), hosts, token, public_paths=self.app.files)
        site = Site(guarded, reactor=clock)  # type: ignore[no-untyped-call]
        site.noisy = False
        site.log = lambda request: None  # type: ignore[method-assign]  # the page polls every second
        listening = strports.service(description, site, clock)
        self._endpoint = listening.endpoint = _Logged(listening.endpoint)
        self.history.setServiceParent(self)  # type: ignore[no-untyped-call]
        listening.setServiceParent(self)  # type: ignore[no-untyped-call]

    @property
    def port(self) -> Any:
        return self._endpoint.port
