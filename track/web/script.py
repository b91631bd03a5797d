"""`GET /track.js`: the browser tracker, a file shipped in the package
(track/web/static/track.js), with an ETag so a browser revalidates it for
a 304 instead of downloading it again, gzipped for a browser that asks.

It is served to every origin (`Access-Control-Allow-Origin: *`), so that
`<script src=... integrity=... crossorigin>` can check it, and with
`X-Content-Type-Options: nosniff`."""

# Twisted's IRequest declares its methods without annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from importlib import resources

from twisted.web.iweb import IRequest

from track.web.cachedbody import CachedBody

SCRIPT_PATH = "/track.js"
MAX_AGE_SECONDS = 3600  # an hour: a new release reaches pages soon, and the ETag makes the check cheap


class StaticScript(CachedBody):
    """A file shipped in track/web/static/, read once, for every origin."""

    def __init__(self, name: str = "track.js", content_type: bytes = b"application/javascript; charset=utf-8",
                 max_age: int = MAX_AGE_SECONDS) -> None:
        super().__init__(resources.files("track.web").joinpath("static", name).read_bytes(),
                         content_type, b"public, max-age=%d" % max_age)

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return super().render(request)
