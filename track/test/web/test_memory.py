"""Memory stays flat against huge and compressed bodies: `twistd track` in a
subprocess, its peak RSS (VmHWM) read from /proc before and after."""

from __future__ import annotations

import gzip
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from track.test.process import TwistdTrack, peak_rss_mb
from track.test.rawhttp import connect, request

PATH = "/api/1.0/track/user/"
BIG = 200 * 1024 * 1024  # declared or streamed: 200 MB
SLACK_MB = 40  # what one request may add to the peak RSS at most


class MemoryTests(TestCase):
    timeout = 120

    # Trial waits for the Deferred a TestCase's setUp returns, but its
    # TestCase keeps unittest's "setUp() -> None" annotation.
    @inlineCallbacks
    def setUp(self) -> Any:  # type: ignore[override]
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.proc = TwistdTrack(["--http", "tcp:0:interface=127.0.0.1"], cwd)
        self.addCleanup(self.proc.stop)
        base = yield self.proc.ready
        self.port = int(base.rsplit(":", 1)[1])
        self.pid = self.proc.transport.pid

    @inlineCallbacks
    def stream(self, head: bytes, chunk: bytes, total: int) -> Any:
        """Send `head` then `chunk` repeatedly (up to `total` bytes) until the
        server answers and closes; return (statuses, bytes sent)."""
        client = yield connect(self.port)
        client.send(head)
        sent = 0
        while sent < total and not client.closed.called:
            client.send(chunk)
            sent += len(chunk)
            yield deferLater(reactor, 0, lambda: None)
        yield client.closed
        return client.statuses(), sent

    @inlineCallbacks
    def test_huge_and_compressed_bodies_do_not_grow_memory(self) -> Any:
        before = peak_rss_mb(self.pid)
        piece = b"a" * 65536
        cases = {
            "declared 200 MB": (request(PATH, b"", {"Content-Length": str(BIG)}), piece),
            "chunked 200 MB": (request(PATH, b"", {"Transfer-Encoding": "chunked"}),
                               b"%x\r\n%s\r\n" % (len(piece), piece)),
        }
        for name, (head, chunk) in cases.items():
            statuses, sent = yield self.stream(head, chunk, BIG)
            self.assertEqual(statuses, [413], name)
            self.assertLess(sent, BIG, f"{name}: the server read it all")
        bomb = gzip.compress(b"&" * (60 * 1024 * 1024), 9)  # ~60 KB inflating to 60 MB
        client = yield connect(self.port)
        client.send(request(PATH, bomb, {"Content-Encoding": "gzip"}))
        yield client.closed
        self.assertEqual(client.statuses(), [413])
        after = peak_rss_mb(self.pid)
        print(f"\npeak RSS of twistd track: {before:.1f} MB before, {after:.1f} MB after "
              f"two 200 MB bodies and a 60 MB gzip bomb")
        self.assertLess(after - before, SLACK_MB)
