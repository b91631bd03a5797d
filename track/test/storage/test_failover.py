"""Failover between the hosts of a multi-host DSN, without a cluster: the
shared MariaDB as the host that works, and in front of it a port nobody
listens on (refused) or a listener that never answers (hung).  The Galera
tests (track.test.cluster) break real nodes; these are the quick ones.
Also: the background watch taking back the preferred host (in memory)."""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.fields.kinds import KINDS, parse_event
from track.storage.dialect import dialect_for
from track.storage.dsn import parse_dsn
from track.storage.hosts import HEALTHY_ROUNDS, IDLE_INTERVAL, Address, Hosts, HostWatch
from track.storage.store import Store
from track.test.mariadb import MYSQL_SKIP, free_port
from track.test.support import admin_port, client_pool, create_schema, execute, mysql_dsn, reset_mysql, serve

USER = KINDS["user"]
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}


def user_row(message_id: str) -> tuple[Any, ...]:
    from datetime import datetime

    return parse_event(USER, {"ProfileID": "7", "Region": "eu", "MessageID": message_id}, "10.0.0.1",
                       datetime(2026, 11, 29, 12, 0, 0))


class _Silent(Protocol):
    """Accepts a connection and never says a word (a hung server)."""


def multi_dsn(case: TestCase, first: str, options: str = "") -> str:
    shared = mysql_dsn(case)
    auth = shared.user + (f":{shared.password}" if shared.password else "")
    return f"mysql://{auth}@{first},{shared.host}:{shared.port}/{shared.database}{options}"


class FailoverTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 60

    def setUp(self) -> None:
        create_schema(reset_mysql(self))

    def store(self, text: str) -> Store:
        store = Store(dialect_for(parse_dsn(text)))
        self.addCleanup(store.close)
        return store

    def stored(self, *ids: str) -> list[str]:
        rows = execute(mysql_dsn(self), "SELECT MessageID FROM UserEvent ORDER BY MessageID")
        return [m for (m,) in rows if m in ids]

    async def test_healthz_names_the_one_host_of_a_plain_dsn(self) -> None:
        """On the admin listener; the public /healthz names no host."""
        port, _ = serve(self, mysql_dsn(self), admin_http="tcp:0:interface=127.0.0.1")
        response = await treq.get(f"http://127.0.0.1:{admin_port(self)}/healthz", pool=client_pool(self))
        health = json.loads(await response.content())
        shared = mysql_dsn(self)
        self.assertEqual(health["database_host"], f"{shared.host}:{shared.port}")
        self.assertNotIn("database_hosts", health)
        response = await treq.get(f"http://127.0.0.1:{port}/healthz", pool=client_pool(self))
        public = await response.content()
        self.assertEqual(json.loads(public)["database"], "up")
        self.assertNotIn(shared.host.encode(), public)

    async def test_a_switch_is_counted_in_metrics(self) -> None:
        refused = f"127.0.0.1:{free_port()}"
        port, _ = serve(self, parse_dsn(multi_dsn(self, refused)))
        pool = client_pool(self)
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/user/", pool=pool, headers=FORM,
                                   data=b"ProfileID=7&Region=eu&MessageID=switch-1")
        self.assertEqual(response.code, 201)
        metrics = (await (await treq.get(f"http://127.0.0.1:{port}/metrics", pool=pool)).text()).splitlines()
        self.assertIn("track_db_host_switches_total 1.0", metrics)
        self.assertEqual(self.stored("switch-1"), ["switch-1"])

    async def test_a_refused_first_host_moves_the_write_to_the_next(self) -> None:
        refused = f"127.0.0.1:{free_port()}"
        store = self.store(multi_dsn(self, refused))
        # Writes in flight together: each is stored, and they move the pool once.
        writes: list[Deferred[Any]] = [store.insert(USER, [user_row(f"f-{k}")]) for k in (1, 2)]
        writes.append(store.insert_atomic([(USER, [user_row("f-a")])]))
        outcomes = await gatherResults(writes)
        self.assertEqual(outcomes, [None, None, None])
        self.assertEqual(self.stored("f-1", "f-2", "f-a"), ["f-1", "f-2", "f-a"])
        self.assertEqual(store.hosts.switches, 1)
        shared = mysql_dsn(self)
        health = store.hosts_health()
        assert health is not None
        self.assertEqual(health["database_host"], f"{shared.host}:{shared.port}")
        self.assertEqual([(h["host"], h["state"]) for h in health["database_hosts"]],
                         [(refused, "down"), (f"{shared.host}:{shared.port}", "in use")])
        self.assertIn("2003", health["database_hosts"][0]["error"])
        # The next write goes straight to the host in use.
        self.assertIsNone(await store.insert(USER, [user_row("f-3")]))
        self.assertEqual(store.hosts.switches, 1)
        self.assertEqual(self.stored("f-3"), ["f-3"])

    async def test_a_hung_first_host_costs_the_connect_timeout_then_fails_over(self) -> None:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(_Silent))
        self.addCleanup(port.stopListening)
        store = self.store(multi_dsn(self, f"127.0.0.1:{port.getHost().port}", "?connect_timeout=0.5&read_timeout=1"))
        self.assertIsNone(await store.insert(USER, [user_row("h-1")]))
        self.assertEqual(self.stored("h-1"), ["h-1"])
        health = store.hosts_health()
        assert health is not None
        self.assertEqual(health["database_hosts"][0]["state"], "down")

    async def test_the_service_answers_201_from_the_second_host_and_healthz_names_it(self) -> None:
        refused = f"127.0.0.1:{free_port()}"
        text = multi_dsn(self, refused)
        port, _ = serve(self, parse_dsn(text), "--dsn", text, admin_http="tcp:0:interface=127.0.0.1")
        pool = client_pool(self)
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/user/",
                                   data=b"ProfileID=1&Region=eu&MessageID=svc-1", headers=FORM, pool=pool)
        await response.content()
        self.assertEqual(response.code, 201)
        self.assertEqual(self.stored("svc-1"), ["svc-1"])
        response = await treq.get(f"http://127.0.0.1:{admin_port(self)}/healthz", pool=pool)
        health = json.loads(await response.content())
        shared = mysql_dsn(self)
        self.assertEqual((health["database"], health["spool"]["events"]), ("up", 0))
        self.assertEqual(health["database_host"], f"{shared.host}:{shared.port}")
        self.assertEqual([h["host"] for h in health["database_hosts"]], [refused, f"{shared.host}:{shared.port}"])
        if shared.password:
            self.assertNotIn(shared.password, json.dumps(health))

    async def test_no_host_takes_writes_then_it_is_an_outage(self) -> None:
        from track.types import Unavailable

        store = self.store(f"mysql://root@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/x")
        with self.assertRaises(Unavailable):
            await store.insert(USER, [user_row("none")])


class HostWatchTests(SynchronousTestCase):
    """The preferred host is taken back once healthy for HEALTHY_ROUNDS checks in a row."""

    def setUp(self) -> None:
        self.hosts = Hosts([("db1", 3306), ("db2", 3306), ("db3", 3306)])
        self.clock = Clock()
        self.healthy: set[Address] = set()
        self.checked: list[Address] = []
        self.watch = HostWatch(self.hosts, self.check, self.clock, interval=1.0, run=self.run_check)
        self.addCleanup(self.watch.stop)

    def check(self, address: Address) -> None:
        self.checked.append(address)
        if address not in self.healthy:
            raise OSError(f"{address[0]} is down")

    def run_check(self, check: Any, address: Address) -> Deferred[None]:
        try:
            check(address)
        except OSError as e:
            from twisted.internet.defer import fail

            return fail(e)
        return succeed(None)

    def test_taken_back_after_healthy_rounds_and_not_before(self) -> None:
        self.hosts.failed(0, "gone")
        self.hosts.switch(1, "db1 is unavailable")
        self.watch.start()
        self.clock.advance(1.0)
        self.assertEqual(self.hosts.current, 1)  # db1 still down
        self.assertEqual(self.hosts.states[0].state, "down")
        self.healthy.add(("db1", 3306))
        for _ in range(HEALTHY_ROUNDS - 1):
            self.clock.advance(1.0)
            self.assertEqual(self.hosts.current, 1)
        self.clock.advance(1.0)
        self.assertEqual(self.hosts.current, 0)
        self.assertEqual(self.hosts.health()["database_host"], "db1:3306")
        self.assertEqual([s.state for s in self.hosts.states], ["in use", "ready", "down"])

    def test_the_host_in_use_is_not_checked_by_the_watch(self) -> None:
        self.watch.start()
        self.clock.advance(IDLE_INTERVAL - 0.1)
        self.assertEqual(self.checked, [])  # the preferred host in use: checks are less frequent
        self.clock.advance(0.1)
        self.assertEqual(self.checked, [("db2", 3306), ("db3", 3306)])
        self.assertEqual(self.hosts.current, 0)

    def test_a_failure_starts_the_count_again(self) -> None:
        self.hosts.switch(1, "db1 is unavailable")
        self.watch.start()
        self.healthy.add(("db1", 3306))
        self.clock.advance(1.0)
        self.healthy.clear()
        self.clock.advance(1.0)
        self.healthy.add(("db1", 3306))
        self.clock.advance(1.0)
        self.assertEqual(self.hosts.current, 1)
        self.clock.advance(1.0)
        self.assertEqual(self.hosts.current, 0)


class NextHostTests(SynchronousTestCase):
    def test_order(self) -> None:
        hosts = Hosts([("a", 1), ("b", 1), ("c", 1)])
        self.assertEqual(hosts.next_to_try(0, [0]), 1)
        hosts.failed(1, "down")
        self.assertEqual(hosts.next_to_try(0, [0]), 2)  # known-down hosts last
        self.assertEqual(hosts.next_to_try(2, [0, 2]), 1)
        self.assertIsNone(hosts.next_to_try(1, [0, 1, 2]))
        hosts.switch(2, "test")
        self.assertEqual(hosts.next_to_try(0, [0]), 2)  # another write moved on already


class GaleraErrorTests(SynchronousTestCase):
    """What a node cut off from its cluster answers is that node's outage."""

    def test_not_primary_errors_are_outages(self) -> None:
        import pymysql

        from track.storage.mysql.dialect import MySQLDialect
        from track.types import Verdict

        dialect = MySQLDialect(parse_dsn("mysql://u@db1,db2/t"))
        for code, message in [
            (1047, "WSREP has not yet prepared node for application use"),
            (1180, "Error while appending streaming replication fragment(provider status: Not connected to "
                   "Primary Component)"),
        ]:
            self.assertIs(dialect.classify(pymysql.err.OperationalError(code, message)), Verdict.OUTAGE)
        self.assertIs(dialect.classify(pymysql.err.OperationalError(1180, "Got error 5 during COMMIT")),
                      Verdict.BUG)
