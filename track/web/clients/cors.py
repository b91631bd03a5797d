"""CORS for browser clients (`--cors-origin`, repeatable, `*` for any).

Allowed origins get their own origin echoed back; an origin listed by name
also gets `Access-Control-Allow-Credentials: true`, which a credentialed
request (a JSON `sendBeacon` always is one) needs.  `*` allows any origin
but never with credentials, as the CORS standard means `*` to be.  Any other
origin gets no CORS headers at all, and the browser blocks it; and since a
"simple" request (a form, `no-cors`, a `text/plain` beacon) reaches the
server whatever the browser then does with the answer, a POST from such an
origin is refused outright (`refused`).

The headers go on every answer to an allowed origin: the routes' and those
the site gives before routing (413, 408, 431, a malformed request's 400),
so a script can read every refusal, not only the routed ones.

With no `--cors-origin` at all, a POST whose Origin is not the collector's
own (`foreign`) is counted and summarized by the site: the browser hides
every answer from that page, which can then never see its events stored.
"""

# Twisted's IRequest declares its methods without annotations, so strict mypy
# would report every request.setHeader() as a call to an untyped function.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterable

from twisted.web.iweb import IRequest

MAX_AGE_SECONDS = 86400
ALLOW_METHODS = b"POST, OPTIONS"
# Headers a browser script may read from our answers.
EXPOSE_HEADERS = b"Retry-After, Track-Message-Id"


class CORS:
    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = {o.rstrip("/").encode() for o in origins}
        self.any = b"*" in self.origins

    def refused(self, request: IRequest) -> bool:
        """True for a request whose Origin is present and not allowed, when
        origins are configured: it must store nothing (403)."""
        if not self.origins or self.any:
            return False
        origin: bytes | None = request.getHeader(b"origin")
        return origin is not None and origin not in self.origins

    def headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """The CORS headers an answer to `origin` carries (none when no
        origin is configured; only Vary for an origin not allowed)."""
        if not self.origins:
            return []
        found = [(b"Vary", b"Origin")]
        if origin is None or not (self.any or origin in self.origins):
            return found
        found.append((b"Access-Control-Allow-Origin", origin))
        if origin != b"*" and origin in self.origins:
            found.append((b"Access-Control-Allow-Credentials", b"true"))
        found.append((b"Access-Control-Expose-Headers", EXPOSE_HEADERS))
        return found

    def annotate(self, request: IRequest) -> bool:
        """Add CORS headers to an answer if the caller's origin is allowed."""
        if not self.origins:
            return False
        headers = self.headers(request.getHeader(b"origin"))
        for name, value in headers:
            request.setHeader(name, value)
        return len(headers) > 1

    def foreign(self, origin: bytes | None, host: bytes | None) -> bool:
        """True for a request from a page of another origin than the
        collector's own (`host`, its Host header) while no origin is
        configured: its answers are hidden from the page."""
        if self.origins or origin is None:
            return False
        scheme, _, authority = origin.partition(b"://")
        if not authority or host is None:
            return True  # "null" (a sandboxed frame, a file:// page) or no Host to compare with
        default = {b"http": b":80", b"https": b":443"}.get(scheme.lower())
        if default is not None:
            authority = authority.removesuffix(default)
            host = host.removesuffix(default)
        return authority.lower() != host.lower()

    def preflight(self, request: IRequest) -> None:
        if not self.annotate(request):
            return
        request.setHeader(b"Access-Control-Allow-Methods", ALLOW_METHODS)
        requested = request.getHeader(b"access-control-request-headers")
        if requested:
            request.setHeader(b"Access-Control-Allow-Headers", requested)
        request.setHeader(b"Access-Control-Max-Age", b"%d" % MAX_AGE_SECONDS)
