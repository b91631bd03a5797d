"""CORS for browser clients (`--cors-origin`, repeatable, `*` for any).

Allowed origins get their own origin echoed back; an origin listed by name
also gets `Access-Control-Allow-Credentials: true`, which a credentialed
request (a JSON `sendBeacon` always is one) needs.  `*` allows any origin
but never with credentials, as the CORS standard means `*` to be.  Any other
origin gets no CORS headers at all, and the browser blocks it; and since a
"simple" request (a form, `no-cors`, a `text/plain` beacon) reaches the
server whatever the browser then does with the answer, a POST from such an
origin is refused outright (`refused`).
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

    def _allowed_origin(self, request: IRequest) -> bytes | None:
        if not self.origins:
            return None
        origin: bytes | None = request.getHeader(b"origin")
        if origin is None or not (self.any or origin in self.origins):
            return None
        return origin

    def refused(self, request: IRequest) -> bool:
        """True for a request whose Origin is present and not allowed, when
        origins are configured: it must store nothing (403)."""
        if not self.origins or self.any:
            return False
        origin: bytes | None = request.getHeader(b"origin")
        return origin is not None and origin not in self.origins

    def annotate(self, request: IRequest) -> bool:
        """Add CORS headers to an answer if the caller's origin is allowed."""
        if not self.origins:
            return False
        request.setHeader(b"Vary", b"Origin")
        origin = self._allowed_origin(request)
        if origin is None:
            return False
        request.setHeader(b"Access-Control-Allow-Origin", origin)
        if origin != b"*" and origin in self.origins:
            request.setHeader(b"Access-Control-Allow-Credentials", b"true")
        request.setHeader(b"Access-Control-Expose-Headers", EXPOSE_HEADERS)
        return True

    def preflight(self, request: IRequest) -> None:
        if not self.annotate(request):
            return
        request.setHeader(b"Access-Control-Allow-Methods", ALLOW_METHODS)
        requested = request.getHeader(b"access-control-request-headers")
        if requested:
            request.setHeader(b"Access-Control-Allow-Headers", requested)
        request.setHeader(b"Access-Control-Max-Age", b"%d" % MAX_AGE_SECONDS)
