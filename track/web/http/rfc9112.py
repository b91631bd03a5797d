"""What RFC 9112 requires of a request's head (its request line and Host),
checked once the headers are in, before any of the body is read.

Twisted's parser takes a request without a Host header, or with several,
and passes an absolute-form target (`POST http://host/path HTTP/1.1`) on
as if it were a path.  RFC 9112 section 3.2 says a server MUST answer 400
to the first two and MUST accept the third; these functions say which, so
the HTTP channel (track/web/http/site.py) can answer at once.
"""

from __future__ import annotations

import re

# RFC 9110 section 7.2 / RFC 3986 section 3.2.2: an IP-literal in brackets, or
# a reg-name / IPv4 address (unreserved, pct-encoded, sub-delims), then an
# optional port.  Empty is allowed: RFC 9110 lets a client send an empty Host.
_HOST = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_SCHEMES = (b"http://", b"https://")


class BadHead(ValueError):
    """The request line or Host header breaks RFC 9112: answer 400."""


def check_host(version: bytes, hosts: list[bytes] | None) -> None:
    """RFC 9112 section 3.2: a server MUST respond 400 to an HTTP/1.1 request
    without a Host header, and to any request with more than one Host header
    line or an invalid Host value."""
    if hosts is None:
        if version != b"HTTP/1.0":  # Twisted passes on only 1.0 and 1.1
            raise BadHead("missing Host header")
        return
    if len(hosts) != 1:
        raise BadHead("more than one Host header")
    if _HOST.fullmatch(hosts[0]) is None:
        raise BadHead("invalid Host header")


def origin_form(target: bytes) -> tuple[bytes, bytes]:
    """An absolute-form request-target as (origin-form target, authority).

    RFC 9112 section 3.2.2: a server MUST accept the absolute form, and MUST
    then use the target's authority instead of the Host header.  A target
    that is neither (nor `*`) is a BadHead."""
    scheme = next((s for s in _SCHEMES if target[: len(s)].lower() == s), None)
    if scheme is None:
        raise BadHead("the request target is neither a path nor an http(s) URL")
    rest = target[len(scheme):]
    end = min((i for i in (rest.find(b"/"), rest.find(b"?"), rest.find(b"#")) if i != -1), default=len(rest))
    authority, path = rest[:end], rest[end:].split(b"#", 1)[0]
    # RFC 9110 section 4.2.4: userinfo in an http(s) URI is to be treated as an error.
    if not authority or b"@" in authority or _HOST.fullmatch(authority) is None:
        raise BadHead("invalid host in the request target")
    if not path.startswith(b"/"):
        path = b"/" + path
    return path, authority
