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
from typing import Any, BinaryIO
from urllib.parse import urlsplit

BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
RETRY_AFTER_MIN = 0.5  # a Retry-After of 0 (or in the past) must not become a busy loop
RETRY_AFTER_JITTER = 0.25  # up to this fraction more, so clients told the same do not come back in step

Answer = tuple[int, "Headers | None", bytes, "Exception | None"]
MAX_LINE = 65536  # as http.client: a longer status or header line is no answer
MAX_HEADERS = 100
_BODIES = ("PATCH", "POST", "PUT")  # the methods http.client sends a Content-Length for, even without a body


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


class Headers(dict[str, str]):
    """An answer's headers, by lower-case name."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class Connection:
    """A kept-alive connection, opened when needed (by http.client, TLS and
    all).  The requests and answers on it are written and read here: each
    request in one send, where http.client sends the head and the body
    apart (two wake-ups of the collector, and of the GIL here), and parses
    each answer's headers with the email package (a third of a sending
    thread's work)."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self._http: http.client.HTTPConnection | None = None
        self._reader: BinaryIO | None = None
        self._head = b""  # the request line's host part: "Host: ...\r\n" and what http.client adds

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        """(status, headers, body, None), or (0, None, b"", the error) when
        no answer came.  A kept-alive connection the server had closed
        meanwhile is retried at once on a new one."""
        for _ in range(2):
            reused = self._http is not None
            try:
                if self._http is None or self._reader is None:
                    self._open()
                assert self._http is not None and self._http.sock is not None and self._reader is not None
                self._http.sock.sendall(self._request(method, path, body, headers))
                status, answered, data, close = _read_answer(self._reader, method)
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if reused and isinstance(e, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
                    continue
                return 0, None, b"", e
            if close:
                self.close()
            return status, answered, data, None
        raise AssertionError("unreachable")

    def _open(self) -> None:
        self._http = self.endpoint.connect(self.timeout)
        self._http.connect()
        assert self._http.sock is not None
        self._reader = self._http.sock.makefile("rb")
        self._head = f"Host: {_host(self._http)}\r\nAccept-Encoding: identity\r\n".encode("latin-1")

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        """The request as http.client writes it: its line, Host,
        Accept-Encoding, Content-Length (a POST has one, even empty), the
        headers given, the body."""
        length = f"Content-Length: {len(body or b'')}\r\n" if body is not None or method in _BODIES else ""
        given = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"{method} {path} HTTP/1.1\r\n".encode("ascii") + self._head
        return head + f"{length}{given}\r\n".encode("latin-1") + (body or b"")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()  # before the socket: its file keeps the descriptor open
            self._reader = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def drop(self) -> None:
        """In a forked child: forget the parent's socket without a word on it."""
        self._http = self._reader = None


def _host(http_connection: http.client.HTTPConnection) -> str:
    """The Host header http.client sends."""
    host = http_connection.host
    try:
        encoded = host.encode("ascii")
    except UnicodeEncodeError:
        encoded = host.encode("idna")
    if b":" in encoded:
        encoded = b"[" + encoded + b"]"  # an IPv6 address
    if http_connection.port == http_connection.default_port:
        return encoded.decode("ascii")
    return f"{encoded.decode('ascii')}:{http_connection.port}"


def _line(reader: BinaryIO, what: str) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong(what)
    return line


def _read_answer(reader: BinaryIO, method: str) -> tuple[int, Headers, bytes, bool]:
    """(status, headers, body, whether the server closes the connection),
    read as http.client reads an answer, with its errors."""
    while True:
        line = _line(reader, "status line")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        text = line.decode("iso-8859-1")
        words = text.split(None, 2)
        version, code = (words[0], words[1]) if len(words) > 1 else ("", "")
        if not version.startswith("HTTP/") or not code.isdigit() or not 100 <= int(code) <= 999:
            raise http.client.BadStatusLine(text)
        headers = Headers()
        count = 0
        while (field := _line(reader, "header line")) not in (b"\r\n", b"\n", b""):
            count += 1
            if count > MAX_HEADERS:
                raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
            name, _, value = field.decode("iso-8859-1").partition(":")
            headers.setdefault(name.strip().lower(), value.strip())  # the first, as http.client's get()
        if int(code) != 100:
            break
    status = int(code)
    connection = headers.get("connection", "").lower()
    if version in ("HTTP/1.0", "HTTP/0.9"):
        close = not (headers.get("keep-alive") or "keep-alive" in connection
                     or "keep-alive" in headers.get("proxy-connection", "").lower())
    elif version.startswith("HTTP/1."):
        close = "close" in connection
    else:
        raise http.client.UnknownProtocol(version)
    if status in (204, 304) or status < 200 or method == "HEAD":
        return status, headers, b"", close
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return status, headers, _chunked(reader), close
    length = headers.get("content-length", "")
    if length.strip().isdigit():
        return status, headers, _exactly(reader, int(length)), close
    return status, headers, reader.read(), True  # to the end of the connection


def _exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


def _chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size = _line(reader, "chunk size").split(b";", 1)[0].strip()
        try:
            left = int(size, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if left == 0:
            while _line(reader, "trailer line") not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(_exactly(reader, left))
        _exactly(reader, 2)  # the chunk's CRLF


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
