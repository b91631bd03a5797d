"""CORS for browser clients (`--cors-origin`, repeatable, `*` for any).

Allowed origins get their own origin echoed back (so credentials work too);
any other origin gets no CORS headers at all, and the browser blocks it.
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

    def annotate(self, request: IRequest) -> bool:
        """Add CORS headers to an answer if the caller's origin is allowed."""
        if not self.origins:
            return False
        request.setHeader(b"Vary", b"Origin")
        origin = self._allowed_origin(request)
        if origin is None:
            return False
        request.setHeader(b"Access-Control-Allow-Origin", origin)
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
