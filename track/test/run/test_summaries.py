"""Logs bounded by design: what happens once per connection is counted and
logged as one line per kind per interval, never one line per event."""

from __future__ import annotations

import re
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.logs import SUMMARY_SECONDS, Logger, Summaries
from track.test.process import begin_post, wait_until
from track.test.rawhttp import HalfOpenClient, RawClient, connect, request
from track.test.support import serve

IDLE = 500
WAIT = 30.0
LEAVING = 100
PATH = "/api/1.0/track/user/"


def capture(case: SynchronousTestCase) -> list[dict[str, Any]]:
    """Every log event published while the test runs."""
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


class SummariesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.summaries = Summaries(Logger("track.test", observer=cast(ILogObserver, self.events.append)),
                                   self.clock)

    def lines(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def test_thousands_of_events_are_one_line_per_kind_per_interval(self) -> None:
        for _ in range(5000):
            self.summaries.add("timed out {n} idle connections")
        for _ in range(3):
            self.summaries.add("accept failed {n} times with EMFILE", level=LogLevel.warn)
        self.assertEqual(self.lines(), [])  # nothing before the interval ends
        self.clock.advance(SUMMARY_SECONDS)
        self.assertEqual(self.lines(), ["timed out 5000 idle connections", "accept failed 3 times with EMFILE"])
        self.assertEqual([e["log_level"] for e in self.events], [LogLevel.info, LogLevel.warn])

    def test_each_interval_has_its_own_count_and_a_quiet_one_has_no_line(self) -> None:
        self.summaries.add("timed out {n} idle connections", 2)
        self.clock.advance(SUMMARY_SECONDS)
        self.clock.advance(SUMMARY_SECONDS * 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])  # nothing scheduled while nothing happens
        self.summaries.add("timed out {n} idle connections")
        self.clock.advance(SUMMARY_SECONDS)
        self.assertEqual(self.lines(), ["timed out 2 idle connections", "timed out 1 idle connections"])

    def test_stop_logs_what_is_left_at_once(self) -> None:
        self.summaries.add("reconnected to the database {n} times", 4)
        self.summaries.stop()
        self.assertEqual(self.lines(), ["reconnected to the database 4 times"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class IdleFloodTests(TestCase):
    """Hundreds of idle connections timed out: no line per connection."""

    @inlineCallbacks
    def test_idle_connections_timed_out_are_counted_and_summarized(self) -> Any:
        events = capture(self)
        port, site = serve(self, request_timeout=0.5)  # idle connections go after 1.5 s
        clients: list[RawClient] = []
        for _ in range(IDLE):
            client = yield connect(port)
            self.addCleanup(client.abort)
            clients.append(client)
        yield wait_until(lambda: all(c.closed.called for c in clients), f"{IDLE} idle connections to be closed",
                         timeout=30)
        site.summaries.flush()
        lines = [formatEvent(e) for e in events]
        self.assertEqual([line for line in lines if "Timing out" in line or "timing out" in line], [])
        summary = [line for line in lines if "idle connections" in line]
        self.assertLessEqual(len(summary), 2)  # one per interval: the flood may straddle two
        self.assertEqual(sum(int(line.split()[2]) for line in summary), IDLE, summary)
        self.assertIn(b"track_connections_timed_out_total %d.0" % IDLE, site.metrics.render())


class StalledRequestTests(TestCase):
    @inlineCallbacks
    def test_one_stalled_request_is_one_408_counted_once(self) -> Any:
        """Answered 408, the connection lingers past the idle timer's
        deadline: that timer must not count (and log) it a second time."""
        events = capture(self)
        port, site = serve(self, request_timeout=0.5)  # 408 at 0.5 s; the idle timer would fire at 1.5 s
        client = yield connect(port, HalfOpenClient())  # stays open through the server's lingering close
        self.addCleanup(client.abort)
        client.send(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        # The client saw the 408 and the server's FIN; the server closes its
        # side once its linger is over (the client never notices: it has read
        # its end of stream already).
        yield wait_until(lambda: client.statuses() == [408] and not site.channels, "the lingering close to end",
                         timeout=WAIT)
        site.summaries.flush()
        lines = [formatEvent(e) for e in events]
        self.assertEqual([line for line in lines if "idle connections" in line], [])
        # "answered 408" (not just "408": the kernel's port may contain it)
        self.assertEqual([line for line in lines if "answered 408" in line or "408 to" in line],
                         ["answered 408 to 1 requests not received in time"])
        self.assertIn(b"track_connections_timed_out_total 1.0", site.metrics.render())


class DroppedClientsTests(TestCase):
    """Clients that send a request and leave before its answer."""

    @inlineCallbacks
    def test_clients_leaving_before_their_answer_log_nothing_per_client(self) -> Any:
        port, site = serve(self)
        events = capture(self)
        for n in range(LEAVING):
            # Its headers and half its body taken in (100 Continue), then gone.
            post = yield Deferred.fromCoroutine(begin_post(port, PATH, f"ProfileID={n}&Region=eu".encode()))
            post.client.abort()
        # One more that stays: its answer comes after all the others were handled.
        last = yield connect(port)
        last.send(request(PATH, b"ProfileID=-1&Region=eu"))
        yield last.closed.addTimeout(WAIT, reactor)
        self.assertEqual(last.statuses(), [201])
        site.summaries.flush()
        lines = [formatEvent(e) for e in events]
        dropped = re.search(rb'^track_connections_dropped_total\{reason="client_left"\} ([0-9.]+)$',
                            site.metrics.render(), re.M)
        assert dropped is not None
        self.assertEqual(float(dropped.group(1)), LEAVING)
        # The test's own clients log their factories; the server, the summary alone.
        self.assertEqual([line for line in lines if not line.startswith(("Starting factory", "Stopping factory"))],
                         [f"{LEAVING} clients left before their answer"])
