"""JSON answers, the only kind of error body track sends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.web.server import Request


def json_response(request: Request, code: int, payload: Mapping[str, Any]) -> bytes:
    """Every JSON answer, errors included: never HTML, never a traceback."""
    # ASCII escapes: a field name may hold a lone surrogate from JSON.
    body = json.dumps(payload).encode("ascii")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body
