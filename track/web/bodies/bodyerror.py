"""The one error a body reader raises: what the client should be told."""

from __future__ import annotations

from typing import Any


class BodyError(ValueError):
    """The body cannot be read; `code` is the status (400, 413 or 415), and
    `extra` goes into the JSON answer beside the message."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra
