"""HTTP to the collector: one kept-alive connection per sending thread, and
how long to wait before trying again."""

from __future__ import annotations

import email.utils

# Imported here, by whoever imports the client, and never by a sending
# thread: getaddrinfo looks up the "idna" codec on first use, and a fork while
# a sending thread is in the middle of that import leaves the child that
# module's import lock, held for ever (its next connect hangs).
import encodings.idna  # noqa: F401
import http.client
import json
import random
import time
from typing import Any
from urllib.parse import urlsplit

BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
RETRY_AFTER_MIN = 0.5  # a Retry-After of 0 (or in the past) must not become a busy loop
RETRY_AFTER_JITTER = 0.25  # up to this fraction more, so clients told the same do not come back in step

Answer = tuple[int, "http.client.HTTPMessage | None", bytes, "Exception | None"]


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    """Exponential from BACKOFF_MIN to BACKOFF_MAX, with jitter so many
    clients coming back after an outage do not come back in step."""
    ceiling = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(attempt - 1, 16))
    return max(BACKOFF_MIN, random.uniform(ceiling / 2, ceiling))


def retry_delay(header: str | None, attempt: int) -> float:
    """What to wait before attempt `attempt + 1`: the collector's Retry-After
    (at least RETRY_AFTER_MIN, plus jitter), else the backoff."""
    asked = retry_after(header)
    if asked is None:
        return backoff(attempt)
    return max(RETRY_AFTER_MIN, asked) * random.uniform(1.0, 1.0 + RETRY_AFTER_JITTER)


class Endpoint:
    """The collector's address, from its base URL, its API prefix or the
    batch endpoint itself."""

    BATCH_PATH = "/api/1.0/track/batch/"
    OPENAPI_PATH = "/api/1.0/openapi.json"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http:// or https:// with a host, not {url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        api = self.BATCH_PATH.rstrip("/").removesuffix("/batch")
        base = parts.path.rstrip("/").removesuffix("/batch").removesuffix(api)
        self.batch_path = base + self.BATCH_PATH
        self.openapi_path = base + self.OPENAPI_PATH

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout)


class Connection:
    """A kept-alive connection, opened when needed."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self._http: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        """(status, headers, body, None), or (0, None, b"", the error) when
        no answer came.  A kept-alive connection the server had closed
        meanwhile is retried at once on a new one."""
        for _ in range(2):
            reused = self._http is not None
            if self._http is None:
                self._http = self.endpoint.connect(self.timeout)
            try:
                self._http.request(method, path, body=body, headers=headers)
                response = self._http.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if reused and isinstance(e, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
                    continue
                return 0, None, b"", e
            if response.will_close:
                self.close()
            return response.status, response.headers, data, None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def drop(self) -> None:
        """In a forked child: forget the parent's socket without a word on it."""
        self._http = None


def fetch_document(endpoint: Endpoint, timeout: float, anonymous: bool = False) -> tuple[dict[str, Any] | None, str]:
    """The collector's OpenAPI document, or (None, why not)."""
    headers = {"Accept": "application/json", "User-Agent": "track-client"}
    if anonymous:
        headers["Track-Anonymous"] = "1"  # its access log line names no client either
    connection = Connection(endpoint, timeout)
    try:
        status, _, body, failure = connection.request("GET", endpoint.openapi_path, None, headers)
    finally:
        connection.close()
    if failure is not None:
        return None, str(failure)
    if status != 200:
        return None, f"HTTP {status}"
    try:
        document = json.loads(body)
    except ValueError as e:
        return None, f"not JSON: {e}"
    return (document, "") if isinstance(document, dict) else (None, "not a JSON object")
