"""Whether a MySQL server takes writes now (`MySQLDialect.writable`, asked
by the probe and the host watch): a read-only server does not, nor does a
Galera node outside the primary component or not Synced (joining, a donor,
desynced), and the write path counts each as an outage, so the instance
leaves that node.  The server here is a cursor that answers SHOW as a real
one in that state does."""

from __future__ import annotations

from typing import Any

import pymysql
from twisted.trial.unittest import SynchronousTestCase

from track.storage.dsn import parse_dsn
from track.storage.mysql.dialect import MySQLDialect
from track.types import Verdict

MYSQL = MySQLDialect(parse_dsn("mysql://u@h/db"))


class Server:
    """A cursor on a server whose variables and status are these."""

    def __init__(self, variables: dict[str, str], status: dict[str, str] | None = None) -> None:
        self.variables = variables
        self.status = status or {}
        self.rows: list[tuple[str, str]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        source = self.variables if sql.startswith("SHOW GLOBAL VARIABLES") else self.status
        self.rows = [(name, value) for name, value in source.items() if f"'{name}'" in sql]

    def fetchall(self) -> list[tuple[str, str]]:
        return self.rows


def galera(state: str, ready: str = "ON") -> Server:
    return Server({"read_only": "OFF", "wsrep_on": "ON"},
                  {"wsrep_ready": ready, "wsrep_local_state_comment": state})


class WritableTests(SynchronousTestCase):
    def assert_not_writable(self, server: Server, words: str) -> None:
        with self.assertRaises(pymysql.err.OperationalError) as raised:
            MYSQL.writable(server)
        self.assertIn(words, str(raised.exception))
        self.assertEqual(MYSQL.classify(raised.exception), Verdict.OUTAGE)

    def test_a_plain_server_or_a_synced_node_takes_writes(self) -> None:
        MYSQL.writable(Server({"read_only": "OFF", "wsrep_on": "OFF"}))
        MYSQL.writable(galera("Synced"))

    def test_a_read_only_server_does_not(self) -> None:
        self.assert_not_writable(Server({"read_only": "ON", "wsrep_on": "OFF"}), "read_only=ON")

    def test_a_desynced_donor_or_joining_node_does_not(self) -> None:
        # SET GLOBAL wsrep_desync=ON, a state transfer's donor, a node catching up.
        for state in ("Donor/Desynced", "Joining", "Joined"):
            self.assert_not_writable(galera(state), f"the node is {state} synced")

    def test_a_node_outside_the_primary_component_does_not(self) -> None:
        self.assert_not_writable(galera("Initialized", ready="OFF"), "wsrep_ready=OFF")
