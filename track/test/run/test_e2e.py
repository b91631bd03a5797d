"""End to end: `twistd -n track` in a subprocess, real HTTP, real databases.

Includes the original's TODO: SIGTERM while clients are posting loses no
event that was answered 201, and every request in progress when SIGTERM
arrives is answered (201) and stored, not dropped.
"""

from __future__ import annotations

import json
import os
import pstats
import signal
from typing import TYPE_CHECKING, Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import HTTPConnectionPool, RequestTransmissionFailed, ResponseNeverReceived

from track import __version__
from track.storage.dsn import DSN, parse_dsn
from track.test.mariadb import MYSQL_SKIP
from track.test.process import (
    TWISTD,
    TwistdTrack,
    accepted_connections,
    begin_post,
    child_env,
    port_of,
    wait_until,
)
from track.test.rawhttp import connect, request
from track.test.support import execute, mysql_dsn_text, reset_mysql, server_dsn

FORM: dict[str | bytes, list[str | bytes]] = {"Content-Type": ["application/x-www-form-urlencoded"]}
EVENTS = {
    "session": b"Region=eu&SessionID=e2e&RemoteIP=10.0.0.9&SessionType=login&Message=h%C3%A9",
    "user": b"ProfileID=7&Region=us&Referrer=ad",
    "item": b"ProfileID=7&Region=eu&ItemName=sword&ItemType=weapon&IsUGC=true&PriceGold=10",
    "purchase": (b"ProfileID=7&Region=eu&Currency=EUR&GrossAmount=9.99&NetAmount=8.5"
                 b"&PaymentProvider=card&Product=gems"),
}
CLIENTS = 20
ACKS_BEFORE_SIGTERM = 300
MAX_REQUESTS = 20_000  # a bound on the load loop, far above what is needed
IN_PROGRESS = 12  # requests half-received when SIGTERM arrives
OPEN_CONNECTIONS = 10  # kept-alive, and as many just accepted, when SIGTERM arrives
SHUTTING_DOWN = b"shutting down: answering requests in progress"


def in_progress_body(n: int) -> bytes:
    """A user event, long enough that half of it is a real part of a body."""
    return f"ProfileID={n}&Region=eu&MessageID=inflight-{n}&Referrer=sigterm-{n}&Message={'m' * 30}".encode()


if TYPE_CHECKING:
    _MixedInto = TestCase  # what the mixin is mixed into, as the type checker sees it
else:
    _MixedInto = object


class EndToEndMixin(_MixedInto):
    dsn: DSN
    dsn_arg: list[str]

    def setUp(self) -> None:
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = CLIENTS
        self.addCleanup(self.pool.closeCachedConnections)

    def start(self, *extra: str) -> Any:
        self.proc = TwistdTrack([*self.dsn_arg, "--http", "tcp:0:interface=127.0.0.1", *extra], self.cwd)
        self.addCleanup(self.proc.stop)
        return self.proc.ready

    def post(self, base: str, kind: str, body: bytes) -> Any:
        return treq.post(f"{base}/api/1.0/track/{kind}/", data=body, headers=FORM, pool=self.pool)

    async def test_a_client_leaving_during_its_batch_is_not_a_database_outage(self) -> None:
        base = await self.start()
        port = port_of(base)
        events = [{"type": "user", "ProfileID": n, "Region": "eu", "MessageID": f"gone-{n}"} for n in range(50)]
        client = await connect(port)
        # The request and the close arrive together: the connection is lost
        # while the batch is being written.
        client.send(request("/api/1.0/track/batch/", json.dumps({"events": events}).encode(),
                            {"Content-Type": "application/json"}))
        client.transport.loseConnection()  # type: ignore[union-attr]
        await client.closed
        await wait_until(lambda: self.rows("SELECT COUNT(*) FROM UserEvent") == [(50,)], "the batch to be stored",
                         timeout=10)
        self.assertEqual(self.rows("SELECT COUNT(*), COUNT(DISTINCT MessageID) FROM UserEvent"),
                         [(50, 50)])
        response = await treq.get(f"{base}/healthz", pool=self.pool)
        self.assertEqual((await response.json())["database"], "up")
        self.assertNotIn(b"database unavailable", self.proc.output)

    async def test_each_endpoint_stores_its_row_before_answering(self) -> None:
        profile = os.path.join(self.cwd, "cpu.prof")
        base = await self.start("--cpuprofile", profile)
        for kind, body in EVENTS.items():
            response = await self.post(base, kind, body)
            content = await response.content()
            self.assertEqual((response.code, content), (201, b""))
            self.assertEqual(response.headers.getRawHeaders("content-type"),
                             ["text/plain; charset=utf-8"])
        # Queried right after the 201s, with the service still running.
        self.assertEqual(self.rows("SELECT Region, SessionID, RemoteIP, SessionType, Message FROM SessionEvent"),
                         [("eu", "e2e", "10.0.0.9", "login", "h\u00e9")])
        self.assertEqual(self.rows("SELECT ProfileID, Referrer, RemoteIP FROM UserEvent"),
                         [(7, "ad", "127.0.0.1")])
        self.assertEqual(self.rows("SELECT ItemName, IsUGC, PriceGold, RemoteIP FROM ItemEvent"),
                         [("sword", 1, 10, "127.0.0.1")])
        money = self.rows("SELECT GrossAmount, NetAmount FROM PurchaseEvent")
        self.assertEqual([tuple(str(v) for v in r) for r in money],
                         [("9.9900", "8.5000")])
        response = await self.post(base, "user", b"ProfileID=x&Region=eu&Bogus=1")
        body = await response.json()
        self.assertEqual((response.code, body["fields"]),
                         (400, {"ProfileID": "must be an integer", "Bogus": "unknown field"}))
        await self.proc.stop()
        self.assertGreater(pstats.Stats(profile).total_calls, 0)  # type: ignore[attr-defined]  # not in typeshed

    async def test_sigterm_while_clients_post_loses_no_acknowledged_event(self) -> None:
        """Keep-alive clients posting flat out; SIGTERM after 300 201s.  Every
        201 names a stored row.  A client may see its connection refused (the
        listener is closed) or closed before any answer (an idle keep-alive
        connection closed as HTTP allows, its next request not read, or closed
        while the client was still writing that request): only
        after the SIGTERM, and never for a request whose row was stored (that
        would be a request in progress dropped).  The precise promise for
        requests in progress is test_requests_in_progress_at_sigterm_*."""
        base = await self.start()
        acked: list[str] = []
        refused: list[int] = []
        failed: list[tuple[str, bool, Exception]] = []  # SessionID, after the SIGTERM?, what the client saw
        signalled = [False]
        sent = [0]

        async def client(n: int) -> None:
            while sent[0] < MAX_REQUESTS:
                sent[0] += 1
                sid = f"c{n}-{sent[0]}"
                body = f"Region=eu&SessionID={sid}&RemoteIP=10.0.0.1&SessionType=load".encode()
                try:
                    response = await self.post(base, "session", body)
                    await response.content()
                except Exception as e:
                    failed.append((sid, signalled[0], e))
                    return  # the server has gone away (or broke a promise: checked below)
                if response.code == 201:
                    acked.append(sid)
                    if len(acked) == ACKS_BEFORE_SIGTERM:
                        signalled[0] = True
                        self.proc.signal("TERM")
                else:
                    refused.append(response.code)

        await DeferredList([Deferred.fromCoroutine(client(n)) for n in range(CLIENTS)])
        self.assertGreaterEqual(len(acked), ACKS_BEFORE_SIGTERM)
        exit = await self.proc.wait()
        # twistd re-raises the signal after a clean shutdown.
        self.assertIn(getattr(exit, "signal", None) or getattr(exit, "exitCode", None), (signal.SIGTERM, 0))
        stored = {sid for (sid,) in self.rows("SELECT SessionID FROM SessionEvent")}
        self.assertEqual(set(acked) - stored, set())
        self.assertEqual(set(refused) - {503}, set())
        unanswered = (ConnectionRefusedError, ResponseNeverReceived, RequestTransmissionFailed)
        self.assertEqual([(sid, e) for sid, after, e in failed if not after or not isinstance(e, unanswered)], [])
        self.assertEqual({sid for sid, _, _ in failed} & stored, set())
        self.assertIn(b"all events flushed", self.proc.output)

    async def test_requests_in_progress_at_sigterm_are_answered_201_and_stored(self) -> None:
        """Clients that have sent their headers and half their bodies when the
        server gets SIGTERM send the rest after it has begun shutting down:
        each gets its 201 (not a dropped connection), and its row is there."""
        base = await self.start()
        port = port_of(base)
        # Half with a Content-Length, half chunked: both ways a body arrives.
        posts = []
        for n in range(IN_PROGRESS):
            posts.append(await begin_post(port, "/api/1.0/track/user/", in_progress_body(n), chunked=n % 2 == 1))
        self.assertTrue(self.proc.signal("TERM"))
        await wait_until(lambda: SHUTTING_DOWN in self.proc.output, "the server to begin shutting down")
        for post in posts:
            post.finish()
        await wait_until(lambda: all(p.closed.called for p in posts), "every answer")
        self.assertEqual([p.statuses() for p in posts], [[100, 201]] * IN_PROGRESS)
        exit = await self.proc.wait()
        self.assertIn(getattr(exit, "signal", None) or getattr(exit, "exitCode", None), (signal.SIGTERM, 0))
        self.assertIn(b"all events flushed", self.proc.output)
        self.assertEqual(sorted(self.rows("SELECT ProfileID, MessageID, Referrer, Message FROM UserEvent")),
                         [(n, f"inflight-{n}", f"sigterm-{n}", "m" * 30) for n in range(IN_PROGRESS)])

    async def test_requests_sent_before_sigterm_on_open_connections_are_answered_201_and_stored(self) -> None:
        """A request that reached the server's socket before SIGTERM, on a
        keep-alive connection between two requests or on a connection just
        accepted, is answered 201 and stored: not closed on as "idle"."""
        base = await self.start()
        port = port_of(base)
        path = "/api/1.0/track/user/"
        kept_alive = []
        for n in range(OPEN_CONNECTIONS):
            client = await connect(port)
            client.send(request(path, in_progress_body(n), close=False))
            await wait_until(lambda client=client: client.statuses() == [201],  # type: ignore[misc]
                             "the first answer on a kept-alive connection")
            kept_alive.append(client)
        fresh = []
        for _ in range(OPEN_CONNECTIONS):
            fresh.append(await connect(port))
        # Accepted by twistd itself (it holds their sockets), not just queued by the kernel.
        pid = self.proc.pid
        assert pid is not None
        await wait_until(lambda: accepted_connections(pid, port) == 2 * OPEN_CONNECTIONS,
                         "twistd to accept every connection")
        clients = kept_alive + fresh
        for n, client in enumerate(clients):
            data = request(path, in_progress_body(OPEN_CONNECTIONS + n))
            # Straight into the socket, now: in the server's receive buffer before the signal is sent.
            sock = client.transport.getHandle()  # type: ignore[union-attr]
            self.assertEqual(sock.send(data), len(data))
        self.assertTrue(self.proc.signal("TERM"))
        await wait_until(lambda: all(c.closed.called for c in clients), "every answer")
        self.assertEqual([c.statuses() for c in clients],
                         [[201, 201]] * OPEN_CONNECTIONS + [[201]] * OPEN_CONNECTIONS)
        await self.proc.wait()
        expected = list(range(OPEN_CONNECTIONS)) + list(range(OPEN_CONNECTIONS, 3 * OPEN_CONNECTIONS))
        self.assertEqual(sorted(n for (n,) in self.rows("SELECT ProfileID FROM UserEvent")), expected)

    async def test_connections_the_kernel_queued_before_sigterm_are_answered_201_and_stored(self) -> None:
        """A busy server (here: stopped with SIGSTOP) leaves new connections
        in the kernel's accept queue.  Clients whose connection was queued and
        whose request was sent before SIGTERM have done all a client can:
        each is answered 201 and stored, not reset when the listener closes."""
        base = await self.start()
        port = port_of(base)
        pid = self.proc.pid
        # Answering means the reactor runs, so twistd's SIGTERM handler is in
        # place ("listening" is logged before it is).
        response = await treq.get(f"{base}/healthz", pool=self.pool)
        self.assertEqual(response.code, 200)
        await response.content()
        self.assertTrue(self.proc.signal("STOP"))
        self.addCleanup(_continue, pid)
        clients = []
        for n in range(OPEN_CONNECTIONS):
            client = await connect(port)  # the kernel completes the handshake: the socket listens
            data = request("/api/1.0/track/user/", in_progress_body(n))
            sock = client.transport.getHandle()  # type: ignore[union-attr]
            self.assertEqual(sock.send(data), len(data))
            clients.append(client)
        self.assertTrue(self.proc.signal("TERM"))
        _continue(pid)
        await wait_until(lambda: all(c.closed.called for c in clients), "every answer")
        self.assertEqual([c.statuses() for c in clients], [[201]] * OPEN_CONNECTIONS)
        await self.proc.wait()
        self.assertEqual(sorted(n for (n,) in self.rows("SELECT ProfileID FROM UserEvent")),
                         list(range(OPEN_CONNECTIONS)))


    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return execute(self.dsn, sql)


def _continue(pid: int | None) -> None:
    """SIGCONT a stopped process (if it is still there)."""
    if pid is not None:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


class MySQLEndToEndTests(EndToEndMixin, TestCase):
    skip = MYSQL_SKIP

    def setUp(self) -> None:
        super().setUp()
        self.dsn = reset_mysql(self)
        self.dsn_arg = ["--dsn", mysql_dsn_text(self)]


class SQLiteEndToEndTests(EndToEndMixin, TestCase):
    """No --dsn at all: the embedded default file in the working directory."""

    def setUp(self) -> None:
        super().setUp()
        self.dsn = parse_dsn("sqlite://" + os.path.join(self.cwd, "track.sqlite3"))
        self.dsn_arg = []


class CommandLineTests(TestCase):
    def run_twistd(self, *args: str) -> Any:
        return getProcessOutputAndValue(TWISTD[0], [*TWISTD[1:], "--pidfile=", *args], env=child_env())

    async def test_version(self) -> None:
        out, _err, code = await self.run_twistd("track", "--version")
        self.assertEqual((out, code), (f"track {__version__}\n".encode(), 0))

    async def test_unreachable_database_without_a_spool_is_one_line_and_non_zero(self) -> None:
        # With the spool (the default) track starts and spools instead; see test_faults.
        out, err, code = await self.run_twistd(
            "-n", "track", "--dsn", "mysql://root:hunter2@127.0.0.1:1/nothing", "--http", "tcp:0",
            "--spool-dir", "",
        )
        self.assertNotEqual(code, 0)
        lines = err.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("track: cannot use database mysql://root:***@127.0.0.1:1/nothing", lines[0])
        self.assertNotIn(b"hunter2", out + err)

    async def test_an_unusable_database_is_one_line_and_non_zero_even_with_a_spool(self) -> None:
        if MYSQL_SKIP:
            raise SkipTest(MYSQL_SKIP)
        dsn = server_dsn()
        cases = {
            "unknown database": f"mysql://{dsn.user}@{dsn.host}:{dsn.port}/track_no_such_database",
            "wrong password": f"mysql://nobody_here:hunter2@{dsn.host}:{dsn.port}/{dsn.database}",
        }
        for name, text in cases.items():
            out, err, code = await self.run_twistd("-n", "track", "--dsn", text, "--http", "tcp:0",
                                                   "--spool-dir", self.mktemp())
            self.assertNotEqual(code, 0, name)
            lines = err.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, (name, err))
            self.assertIn("track: cannot use database", lines[0])
            self.assertNotIn(b"hunter2", out + err)

    async def test_bad_dsn_is_a_usage_error(self) -> None:
        out, err, code = await self.run_twistd("-n", "track", "--dsn", "u:hunter2@bogus(x)/db")
        self.assertNotEqual(code, 0)
        self.assertIn(b"--dsn", out + err)
        self.assertNotIn(b"hunter2", out + err)
