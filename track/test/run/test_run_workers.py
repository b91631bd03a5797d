"""`--workers`: the parent's socket, bound where Twisted's own parsing of
the --http description says."""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.trial.unittest import SynchronousTestCase

from track.run.workers import bind, tcp_address


class BindTests(SynchronousTestCase):
    def test_what_twisted_parsed_is_read_from_the_endpoint(self) -> None:
        """tcp_address reads attributes Twisted keeps private: if a Twisted
        release renames them, this says so."""
        cases = {
            "tcp:8123:backlog=7:interface=127.0.0.2": (8123, "127.0.0.2", 7),
            r"tcp6:8124:interface=\:\:1": (8124, "::1", 50),
            "tcp:8125": (8125, "", 50),
        }
        for description, expected in cases.items():
            with self.subTest(description=description):
                endpoint = serverFromString(reactor, description)
                self.assertIsInstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint))
                try:
                    found = tcp_address(endpoint)
                except AttributeError as e:
                    self.fail(f"Twisted's TCP endpoints no longer keep _port, _interface and _backlog ({e}): "
                              "update track.run.workers.tcp_address")
                self.assertEqual(found, expected)

    def test_the_socket_listens_where_the_description_says(self) -> None:
        sock = bind("tcp:0:backlog=7:interface=127.0.0.1")
        self.addCleanup(sock.close)
        self.assertEqual((sock.family, sock.getsockname()[0]), (socket.AF_INET, "127.0.0.1"))
        client = socket.create_connection(sock.getsockname()[:2], timeout=5)
        client.close()

    def test_an_ipv6_interface_gets_an_ipv6_socket(self) -> None:
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            sock = bind(r"tcp6:0:interface=\:\:1")
        except OSError as e:
            self.skipTest(f"no IPv6 loopback: {e}")
        self.addCleanup(sock.close)
        self.assertEqual((sock.family, sock.getsockname()[0]), (socket.AF_INET6, "::1"))

    def test_an_address_in_use_is_an_os_error(self) -> None:
        """What twistd reports when the parent cannot bind (as before)."""
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        self.assertRaises(OSError, bind, f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1")


class ParentWatchTests(SynchronousTestCase):
    """Where Linux's parent-death signal is missing, a worker still stops
    within a second of its parent's death."""

    def test_the_worker_stops_once_its_parent_is_gone(self) -> None:
        from twisted.internet.task import Clock

        from track.run.orphan import ParentWatch

        class Reactor(Clock):
            stopped = 0

            def stop(self) -> None:
                self.stopped += 1

        clock, ppid = Reactor(), [4242]
        watch = ParentWatch(4242, clock, getppid=lambda: ppid[0])
        watch.startService()
        clock.advance(5)
        self.assertEqual(clock.stopped, 0)
        ppid[0] = 1  # reparented: the parent died
        clock.advance(1)
        self.assertEqual(clock.stopped, 1)
        clock.advance(5)
        self.assertEqual(clock.stopped, 1)
        watch.stopService()
