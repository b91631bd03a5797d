"""A scripted stand-in for the batch endpoint, on a real socket in a thread.

For the client's unit tests: each answer is chosen by a function of the
events received, so a test can answer 503, 400 naming indexes, or 201, and
see exactly what the client sent and when.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, headers, JSON body) for the batch of events a request carried
Answer = tuple[int, dict[str, str], dict[str, Any]]


def stored(events: list[dict[str, Any]]) -> Answer:
    return 201, {}, {"stored": len(events), "message_ids": [e["MessageID"] for e in events]}


@dataclass
class Received:
    at: float  # time.monotonic() when the request was read
    path: str
    events: list[dict[str, Any]]
    headers: dict[str, str]


class FakeCollector:
    """`answer(events)` decides each reply; `stored()` by default."""

    def __init__(self, answer: Callable[[list[dict[str, Any]]], Answer] = stored) -> None:
        self.answer = answer
        self.requests: list[Received] = []
        self.document: dict[str, Any] | None = None  # what GET answers (any path); None: 404
        self.gets: list[str] = []  # the paths of the GETs received
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                events = [json.loads(line) for line in body.splitlines() if line.strip()]
                with fake.lock:
                    fake.requests.append(Received(time.monotonic(), self.path, events, dict(self.headers)))
                    status, headers, reply = fake.answer(events)
                data = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                with fake.lock:
                    fake.gets.append(self.path)
                    document = fake.document
                data = json.dumps(document).encode() if document is not None else b'{"error": "not found"}'
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sent_ids(self) -> list[str]:
        with self.lock:
            return [e["MessageID"] for r in self.requests for e in r.events]


class DeadPort:
    """A local port bound but not listening: connections to it are refused,
    and no other process can take it until `release()`."""

    def __init__(self) -> None:
        import socket

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        self.socket.close()
