"""The client's HTTP (track.client.transport) against http.client, which it
stands in for on the sending path: the same request bytes, the same
reading of each answer."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from typing import Any

from twisted.trial.unittest import TestCase

from track.client.transport import Connection, Endpoint, _host, _read_answer

ANSWERS = [
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"stored\": 1}",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nretry-after: 9\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.0 201 Created\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.0 201 Created\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\n\r\nto the end",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\n\r\nab",  # short
    b"HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n",  # no reason phrase
    b"HTTP/1.2 201 Created\r\nContent-Length: 0\r\n\r\n",
    b"",  # closed without an answer
    b"HTTP/1.1 2x1 Created\r\n\r\n",
    b"HTTP/1.1\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/2 201 Created\r\n\r\n",
    b"HTTP/1.1 201 Created\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n",
    b"HTTP/1.1 201 Created\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
]


class _Socket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))


def by_http_client(data: bytes) -> Any:
    response = http.client.HTTPResponse(_Socket(data), method="POST")  # type: ignore[arg-type]
    try:
        response.begin()
        return response.status, response.headers.get("Retry-After"), response.read(), response.will_close
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__, str(e)


def by_transport(data: bytes) -> Any:
    try:
        status, headers, body, close = _read_answer(io.BufferedReader(io.BytesIO(data)), "POST")
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__, str(e)
    return status, headers.get("Retry-After"), body, close


class Server:
    """A socket server that records each request's bytes and answers from a list."""

    def __init__(self, answers: list[bytes], close_after: int = 0) -> None:
        self.answers, self.close_after = list(answers), close_after
        self.received: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn, conn.makefile("rb") as reader:
                served = 0
                while self.answers:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    length = next((int(x.split(b":")[1]) for x in head.split(b"\r\n")
                                   if x.lower().startswith(b"content-length:")), 0)
                    self.received.append(head + reader.read(length))
                    conn.sendall(self.answers.pop(0))
                    served += 1
                    if served == self.close_after:
                        break

    def stop(self) -> None:
        self.listener.close()


class TransportTests(TestCase):
    def test_each_answer_is_read_as_http_client_reads_it(self) -> None:
        for data in ANSWERS:
            expected = by_http_client(data)
            if expected[0] == "ValueError":
                continue
            self.assertEqual(by_transport(data), expected, data[:80])

    def test_the_request_bytes_are_http_clients(self) -> None:
        server = Server([b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"] * 4)
        self.addCleanup(server.stop)
        headers = {"Content-Type": "application/x-ndjson", "User-Agent": "track-client", "Track-Sent-At": "1"}
        reference = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        reference.request("POST", "/api/1.0/track/batch/", body=b'{"a":1}', headers=headers)
        reference.getresponse().read()
        reference.request("GET", "/api/1.0/openapi.json", headers={"Accept": "application/json"})
        reference.getresponse().read()
        reference.close()
        connection = Connection(Endpoint(f"http://127.0.0.1:{server.port}"), 5)
        self.addCleanup(connection.close)
        for method, path, body, given in [("POST", "/api/1.0/track/batch/", b'{"a":1}', headers),
                                          ("GET", "/api/1.0/openapi.json", None, {"Accept": "application/json"})]:
            status, _, _, failure = connection.request(method, path, body, given)
            self.assertEqual((status, failure), (201, None))
        self.assertEqual(server.received[2:], server.received[:2])
        self.assertEqual(server.connections, 2)  # one each: the second request kept the connection

    def test_a_kept_alive_connection_closed_meanwhile_is_opened_again(self) -> None:
        answer = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        server = Server([answer] * 3, close_after=1)
        self.addCleanup(server.stop)
        connection = Connection(Endpoint(f"http://127.0.0.1:{server.port}"), 5)
        self.addCleanup(connection.close)
        for _ in range(3):
            self.assertEqual(connection.request("POST", "/", b"x", {})[0::2], (201, b"ok"))
        self.assertEqual(server.connections, 3)

    def test_a_refused_connection_is_the_error(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as bound:
            port = bound.getsockname()[1]
        status, headers, body, failure = Connection(Endpoint(f"http://127.0.0.1:{port}"), 5).request(
            "POST", "/", b"x", {})
        self.assertEqual((status, headers, body), (0, None, b""))
        self.assertIsInstance(failure, ConnectionRefusedError)

    def test_the_host_header(self) -> None:
        for connection, host in [
            (http.client.HTTPConnection("example.com"), "example.com"),
            (http.client.HTTPConnection("example.com", 80), "example.com"),
            (http.client.HTTPConnection("example.com", 8080), "example.com:8080"),
            (http.client.HTTPSConnection("example.com", 443), "example.com"),
            (http.client.HTTPSConnection("example.com", 80), "example.com:80"),
            (http.client.HTTPConnection("::1", 8080), "[::1]:8080"),
            (http.client.HTTPConnection("b\u00fccher.example", 8080), "xn--bcher-kva.example:8080"),
        ]:
            self.assertEqual(_host(connection), host)
