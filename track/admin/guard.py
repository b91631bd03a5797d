"""The admin listener's door: only its operator may use it.

Every answer carries headers that keep it out of other sites' frames and
out of content sniffing.  A request whose `Host` is not this listener's own
address (or `localhost`, or a name given with `--admin-host`) is answered
421: a page on another site that reaches the listener by DNS rebinding
sends its own name as Host and gets nothing.  With `--admin-token`, every
request except the page's own static files (which hold no data: the page
must load to ask for the token) needs `Authorization: Bearer TOKEN`.
"""

# Twisted's IRequest declares its methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from track.web.responses import json_response

# The page runs only its own script and styles, talks only to this
# listener, and may not be framed, rebased or made to post a form.
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = {
    b"Content-Security-Policy": CSP,
    b"X-Frame-Options": b"DENY",
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
}


def host_name(header: bytes) -> tuple[str, str]:
    """The name and port (may be empty) of a Host header, lower-cased,
    without IPv6 brackets or a trailing dot."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else ""
    name, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return name.rstrip("."), port


class Guard(Resource):
    """Wraps the admin app's resource: headers, Host check, token."""

    isLeaf = True

    def __init__(self, inner: Resource, hosts: Collection[str], token: str | None,
                 public_paths: Collection[str]) -> None:
        super().__init__()
        self.inner = inner
        self.names = {h.lower().rstrip(".") for h in hosts} | {"localhost"}
        self.token = token.encode("utf-8") if token else None
        self.public_paths = {p.encode("ascii") for p in public_paths}

    def _host_allowed(self, request: IRequest) -> bool:
        header = request.getHeader(b"host")
        if not header:
            return False
        name, port = host_name(header)
        if name in self.names or (port and f"{name}:{port}" in self.names):
            return True
        own: Any = request.getHost()
        return name == str(getattr(own, "host", "")).lower()

    def _authorized(self, request: IRequest) -> bool:
        if self.token is None or (request.method in (b"GET", b"HEAD") and request.path in self.public_paths):
            return True
        given = request.getHeader(b"authorization") or b""
        scheme, _, value = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token)

    def render(self, request: IRequest) -> Any:  # bytes, or NOT_DONE_YET from Klein
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"Cache-Control", b"no-store")
        if not self._host_allowed(request):
            return json_response(request, 421, {
                "error": "misdirected request",
                "detail": "this admin listener answers only to its own address, localhost, "
                          "or a name given with --admin-host"})
        if not self._authorized(request):
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="track admin"')
            return json_response(request, 401, {
                "error": "unauthorized", "detail": "send Authorization: Bearer TOKEN (--admin-token)"})
        return self.inner.render(request)
