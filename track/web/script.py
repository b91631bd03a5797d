"""`GET /track.js`: the browser tracker, a file shipped in the package
(track/web/static/track.js), with an ETag so a browser revalidates it for
a 304 instead of downloading it again."""

# Twisted's IRequest declares its methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import hashlib
from importlib import resources

from twisted.web.iweb import IRequest

SCRIPT_PATH = "/track.js"
MAX_AGE_SECONDS = 3600  # an hour: a new release reaches pages soon, and the ETag makes the check cheap


class StaticScript:
    """One file's bytes, read once, answered with caching headers."""

    def __init__(self, name: str = "track.js", content_type: bytes = b"application/javascript; charset=utf-8",
                 max_age: int = MAX_AGE_SECONDS) -> None:
        self.body = resources.files("track.web").joinpath("static", name).read_bytes()
        self.etag = b'"' + hashlib.sha256(self.body).hexdigest()[:32].encode() + b'"'
        self.content_type = content_type
        self.cache_control = b"public, max-age=%d" % max_age

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"ETag", self.etag)
        request.setHeader(b"Cache-Control", self.cache_control)
        if self.matches(request.getHeader(b"if-none-match")):
            request.setResponseCode(304)
            return b""
        request.setHeader(b"Content-Type", self.content_type)
        request.setHeader(b"Content-Length", b"%d" % len(self.body))
        return self.body

    def matches(self, header: bytes | None) -> bool:
        """If-None-Match: a list of (maybe weak) tags, or *."""
        if not header:
            return False
        for tag in header.split(b","):
            tag = tag.strip()
            if tag == b"*" or tag.removeprefix(b"W/") == self.etag:
                return True
        return False
