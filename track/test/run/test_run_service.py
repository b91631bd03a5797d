"""The running service in this process: listening through Twisted's own
strports service, a start-up that fails at once on an unusable address, and
the shutdown order (the listener first, then the requests in progress, then
the buffers, the pool last)."""

from __future__ import annotations

import os
import socket
from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import TestCase

from track.run.build import build_service
from track.run.config import Standalone
from track.run.options import Options
from track.run.service import ListenError, TrackService
from track.storage.dsn import DSN
from track.storage.prepare import prepare_database
from track.test.process import begin_post, wait_until
from track.test.support import dsn_text, execute, sqlite_dsn

USER = "/api/1.0/track/user/"
SHUTTING_DOWN = "shutting down: answering requests in progress, then flushing"


def track_messages(case: TestCase) -> list[str]:
    """The text of each track.service log event from now until the test ends."""
    seen: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "track.service":
            seen.append(event["log_format"].format(**event))

    observer = cast(ILogObserver, observe)  # as twisted.logger.capturedLogs does
    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return seen


def build(case: TestCase, http: str = "tcp:0:interface=127.0.0.1") -> tuple[TrackService, DSN]:
    """The service as twistd builds it, on a temporary SQLite file (and its
    DSN) and spool, not started; stopped at the end of the test if it is
    still running."""
    dsn = sqlite_dsn(case)
    options = Options()
    options.parseOptions(["--http", http, "--dsn", dsn_text(dsn), "--spool-dir", os.path.abspath(case.mktemp())])
    service = build_service(options.config, Standalone(), reactor, prepare_database(dsn))
    case.addCleanup(lambda: service.stopService() if service.running else None)
    return service, dsn


class ListeningTests(TestCase):
    def test_the_parts_start_storage_first_and_listening_last(self) -> None:
        """Twisted starts a MultiService's children in order and stops them
        in reverse: the listener, Twisted's own service for the --http
        endpoint string, is the last to start and the first to stop."""
        parts = list(build(self)[0])
        self.assertEqual([type(p).__name__ for p in parts[:3]], ["_Storage", "_Pipeline", "_Connections"])
        self.assertIsInstance(parts[3], StreamServerEndpointService)

    async def test_it_logs_the_port_the_kernel_gave(self) -> None:
        messages = track_messages(self)
        service, _ = build(self)
        service.privilegedStartService()
        service.startService()
        port = service.port.getHost().port
        self.assertNotEqual(port, 0)
        self.assertIn(f"track listening on http://127.0.0.1:{port}", messages)
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(Protocol))
        self.assertIsInstance(client, Protocol)
        assert isinstance(client, Protocol) and client.transport is not None
        client.transport.loseConnection()

    def test_an_unusable_address_fails_start_up_at_once_with_one_line(self) -> None:
        """An address in use: privilegedStartService (where twistd listens)
        raises ListenError itself, with the socket's reason, short enough
        for the 100 characters a daemonizing twistd shows.  (Twisted's
        strports service is what makes the failure synchronous; were that
        to change, this fails.)"""
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        service, _ = build(self, f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1")
        error = self.assertRaises(ListenError, service.privilegedStartService)
        self.assertEqual(str(error), "cannot listen: [Errno 98] Address already in use")
        self.assertLessEqual(len(f"{type(error).__module__}.{type(error).__name__}: {error}"), 100)


class ShutdownOrderTests(TestCase):
    async def test_stop_closes_the_listener_then_answers_then_flushes_then_closes_the_pool(self) -> None:
        messages = track_messages(self)
        service, dsn = build(self)
        service.privilegedStartService()
        service.startService()
        port = service.port.getHost().port
        post = await begin_post(port, USER, b"ProfileID=1&Region=eu&MessageID=in-progress")

        stopped = service.stopService()
        # The listener is closed first: a new client is refused, while the
        # request in progress holds the rest of the shutdown.
        await wait_until(lambda: SHUTTING_DOWN in messages, "the listener to close")
        await self.assertFailure(TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
            Factory.forProtocol(Protocol)), ConnectionRefusedError)
        self.assertFalse(stopped.called)
        self.assertNotIn("all events flushed; database pool closed", messages)

        post.finish()
        await wait_until(lambda: post.closed.called, "the answer")
        self.assertEqual(post.statuses(), [100, 201])
        await stopped
        self.assertEqual(messages[-2:], [SHUTTING_DOWN, "all events flushed; database pool closed"])
        self.assertEqual(execute(dsn, "SELECT MessageID FROM UserEvent"), [("in-progress",)])
