"""JSON answers, the only kind of error body track sends."""

# Twisted's IRequest declares its methods without annotations, so strict mypy
# would report every request.setHeader() as a call to an untyped function.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.web import http
from twisted.web.iweb import IRequest

# Reason phrases Twisted's table lacks (it would send "Unknown Status").
REASONS = {429: b"Too Many Requests", 431: b"Request Header Fields Too Large"}


def reason(code: int) -> bytes:
    """The status line's reason phrase for `code`."""
    return REASONS.get(code) or http.RESPONSES.get(code) or b"Error"


def json_response(request: IRequest, code: int, payload: Mapping[str, Any]) -> bytes:
    """Every JSON answer, errors included: never HTML, never a traceback."""
    # ASCII escapes: a field name may hold a lone surrogate from JSON.
    body = json.dumps(payload).encode("ascii")
    request.setResponseCode(code, reason(code))
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body
