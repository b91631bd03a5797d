"""One answer's bytes, served with an ETag (so a client revalidates for a
304 instead of downloading them again) and gzipped for a client that asks:
track.js and the OpenAPI document, which every tab fetches."""

# Twisted's IRequest declares its methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import gzip
import hashlib
from functools import cached_property

from twisted.web.iweb import IRequest


def accepts_gzip(header: bytes | None) -> bool:
    """Accept-Encoding takes gzip: named (gzip or x-gzip) with q above 0,
    or not named and `*` with q above 0 (RFC 9110 section 12.5.3)."""
    if not header:
        return False
    weights: dict[bytes, float] = {}
    for item in header.lower().split(b","):
        coding, _, params = item.partition(b";")
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.strip().partition(b"=")
            if name == b"q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights.setdefault(coding.strip(), q)
    for name in (b"gzip", b"x-gzip"):
        if name in weights:
            return weights[name] > 0
    return weights.get(b"*", 0.0) > 0


class CachedBody:
    """`body`, and its gzip (made on the first request that takes it), with
    caching headers: `cache_control` as given, the ETag a hash of the body."""

    def __init__(self, body: bytes, content_type: bytes, cache_control: bytes) -> None:
        self.body = body
        tag = hashlib.sha256(body).hexdigest()[:32].encode()
        self.etag = b'"' + tag + b'"'
        self.gzip_etag = b'"' + tag + b'-gzip"'  # another representation: another tag
        self.content_type = content_type
        self.cache_control = cache_control

    @cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, mtime=0)

    def render(self, request: IRequest) -> bytes:
        zipped = accepts_gzip(request.getHeader(b"accept-encoding"))
        request.setHeader(b"ETag", self.gzip_etag if zipped else self.etag)
        request.setHeader(b"Cache-Control", self.cache_control)
        # Beside what the answer varies on already (CORS's Origin).
        vary = request.responseHeaders.getRawHeaders(b"vary", [])
        request.setHeader(b"Vary", b", ".join([*vary, b"Accept-Encoding"]))
        if self.matches(request.getHeader(b"if-none-match")):
            request.setResponseCode(304)
            return b""
        body = self.gzipped if zipped else self.body
        request.setHeader(b"Content-Type", self.content_type)
        if zipped:
            request.setHeader(b"Content-Encoding", b"gzip")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body

    def matches(self, header: bytes | None) -> bool:
        """If-None-Match: a list of (maybe weak) tags, or *.  Either
        representation's tag matches: their content is the same."""
        if not header:
            return False
        for tag in header.split(b","):
            tag = tag.strip().removeprefix(b"W/")
            if tag in (b"*", self.etag, self.gzip_etag):
                return True
        return False
