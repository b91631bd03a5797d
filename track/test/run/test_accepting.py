"""track/run/accepting.py: the descriptor limit, the default
--max-connections, and what AcceptGuard relies on of Twisted's TCP port.

When a test naming a private Twisted name fails after a Twisted upgrade,
read track/run/accepting.py, find what replaces it, and only then allow
that release in setup.py."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from typing import Any

from twisted.internet import tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from track.logs import SUMMARY_SECONDS, Logger, Summaries
from track.metrics import Metrics
from track.run import accepting
from track.run.accepting import RESERVED_DESCRIPTORS, AcceptGuard, default_max_connections
from track.test.process import child_env

PRLIMIT = shutil.which("prlimit")


def changed(name: str, what: str) -> str:
    return (f"Twisted's private {name} {what}; track/run/accepting.py relies on it: "
            f"see there what track needs it for, before allowing this Twisted release in setup.py")


class TwistedPrivateNamesTests(SynchronousTestCase):
    def test_the_accept_loop_logs_these_formats(self) -> None:
        source = inspect.getsource(tcp._accept)
        for text in (accepting.RELEASING, accepting.CLOSED, accepting.RESERVING, accepting.COULD_NOT_ACCEPT):
            self.assertIn(text.split("{")[0], source.replace('" "', ""),
                          changed("tcp._accept", f"no longer logs {text!r}"))

    def test_port_doread_logs_through_its_logger_attribute(self) -> None:
        self.assertIn("self._logger.observer", inspect.getsource(tcp.Port.doRead),
                      changed("tcp.Port._logger", "is no longer where doRead logs"))


class DescriptorLimitTests(SynchronousTestCase):
    def test_the_default_leaves_room_for_the_pool_and_the_spool(self) -> None:
        self.assertEqual(default_max_connections(512), 512 - RESERVED_DESCRIPTORS)
        self.assertEqual(default_max_connections(10), 1)

    def test_the_soft_limit_is_raised_to_the_hard_one(self) -> None:
        if PRLIMIT is None:
            self.skipTest("REQUIRED-SKIPPED: prlimit (util-linux) is not installed")
        code = "from track.run.accepting import raise_descriptor_limit as r; print(*r())"
        out = subprocess.run([PRLIMIT, "--nofile=256:1024", "--", sys.executable, "-c", code],
                             env=child_env(), capture_output=True, check=True, timeout=60).stdout
        self.assertEqual(out.split(), [b"256", b"1024"])


class _Listener:
    """A stand-in for a Port's socket: `waiting` clients, then EAGAIN."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        self.closed = 0

    def accept(self) -> tuple[Any, Any]:
        if not self.waiting:
            raise BlockingIOError()
        self.waiting -= 1
        return self, ("127.0.0.1", 1)

    def close(self) -> None:
        self.closed += 1


class AcceptGuardTests(SynchronousTestCase):
    """The guard on a real (not listening) Twisted TCP port, its accept
    loop replaced by one that logs what Twisted's logs out of descriptors."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.metrics = Metrics()
        self.lines: list[dict[str, Any]] = []
        self.summaries = Summaries(Logger("track.test", observer=self.lines.append), self.clock)  # type: ignore[arg-type]
        port: Any = tcp.Port(0, Factory.forProtocol(Protocol), reactor=self.clock)
        port.connected = True
        port.disconnecting = False
        self.reading: list[bool] = []
        port.startReading = lambda: self.reading.append(True)
        port.stopReading = lambda: self.reading.append(False)
        port.socket = _Listener(waiting=200)
        self.port = port
        self.rounds = 0

        def twisted_accept_round() -> None:  # what tcp._accept logs on EMFILE with its reserve taken
            self.rounds += 1
            self.port._logger.info(accepting.COULD_NOT_ACCEPT, acceptError="EMFILE")

        port.doRead = twisted_accept_round
        self.guard = AcceptGuard(self.port, self.clock, self.metrics, self.summaries)
        self.assertTrue(self.guard.install())
        self.addCleanup(self.guard.stop)

    def metric(self, name: str) -> str:
        return "\n".join(line for line in self.metrics.render().decode().splitlines() if line.startswith(name))

    def test_out_of_descriptors_the_waiting_clients_are_closed_and_accepting_pauses(self) -> None:
        self.port.doRead()
        self.assertEqual(self.port.socket.closed, 200)  # every waiting client, on the reserved descriptor
        self.assertEqual(self.reading, [False])  # paused: no busy loop
        self.clock.advance(accepting.ACCEPT_PAUSE)
        self.assertEqual(self.reading, [False, True])
        self.assertEqual(self.metric("track_accept_errors_total"), 'track_accept_errors_total{errno="EMFILE"} 1.0')
        self.assertEqual(self.metric("track_connections_dropped_total"),
                         'track_connections_dropped_total{reason="no_descriptors"} 200.0')

    def test_a_flood_of_accept_errors_is_two_log_lines_per_interval(self) -> None:
        rounds = 1000  # one every ACCEPT_PAUSE: 500 s, 50 intervals
        for _ in range(rounds):
            self.port.socket.waiting = 3
            self.port.doRead()
            self.clock.advance(accepting.ACCEPT_PAUSE)
        self.summaries.flush()
        lines = [formatEvent(e) for e in self.lines]
        intervals = rounds * accepting.ACCEPT_PAUSE / SUMMARY_SECONDS
        self.assertLessEqual(len(lines), 2 * (intervals + 1))
        errors = [int(line.split()[2]) for line in lines if line.startswith("accept failed")]
        closed = [int(line.split()[1]) for line in lines if line.startswith("closed")]
        self.assertEqual((sum(errors), sum(closed), len(errors) + len(closed)), (rounds, 3 * rounds, len(lines)))
        self.assertEqual({e["log_level"] for e in self.lines}, {LogLevel.warn})

    def test_another_accept_error_is_counted_without_pausing(self) -> None:
        self.port._logger.info(accepting.COULD_NOT_ACCEPT, acceptError="ECONNABORTED")
        self.assertEqual(self.metric("track_accept_errors_total"),
                         'track_accept_errors_total{errno="ECONNABORTED"} 1.0')
        self.assertEqual(self.reading, [])
