"""`GET /track.js`: the browser tracker, a file shipped in the package
(track/web/static/track.js), with an ETag so a browser revalidates it for
a 304 instead of downloading it again, gzipped for a browser that asks.

It is served to every origin (`Access-Control-Allow-Origin: *`), so that
`<script src=... integrity=... crossorigin>` can check it, and with
`X-Content-Type-Options: nosniff`."""

# Twisted's IRequest declares its methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

from twisted.web.iweb import IRequest

SCRIPT_PATH = "/track.js"
MAX_AGE_SECONDS = 3600  # an hour: a new release reaches pages soon, and the ETag makes the check cheap


def accepts_gzip(header: bytes | None) -> bool:
    """Accept-Encoding names gzip (or *) without q=0."""
    if not header:
        return False
    for item in header.lower().split(b","):
        coding, _, params = item.partition(b";")
        if coding.strip() in (b"gzip", b"x-gzip", b"*"):
            q = params.strip()
            if q.startswith(b"q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


class StaticScript:
    """One file's bytes (and their gzip), read once, answered with caching headers."""

    def __init__(self, name: str = "track.js", content_type: bytes = b"application/javascript; charset=utf-8",
                 max_age: int = MAX_AGE_SECONDS) -> None:
        self.body = resources.files("track.web").joinpath("static", name).read_bytes()
        self.gzipped = gzip.compress(self.body, mtime=0)
        tag = hashlib.sha256(self.body).hexdigest()[:32].encode()
        self.etag = b'"' + tag + b'"'
        self.gzip_etag = b'"' + tag + b'-gzip"'  # another representation: another tag
        self.content_type = content_type
        self.cache_control = b"public, max-age=%d" % max_age

    def render(self, request: IRequest) -> bytes:
        zipped = accepts_gzip(request.getHeader(b"accept-encoding"))
        etag = self.gzip_etag if zipped else self.etag
        request.setHeader(b"ETag", etag)
        request.setHeader(b"Cache-Control", self.cache_control)
        request.setHeader(b"Vary", b"Accept-Encoding")
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
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
