"""A throwaway 3-node MariaDB Galera cluster on this machine, for tests that
break a node (kill, cut off, restart) while track instances write through it.

Each node is a ThrowawayMariaDB (track.test.mariadb) with the wsrep options
of a real cluster: its own datadir and ports, `gcomm://` naming all three
group ports, rsync state transfers, and the first node started with
`--wsrep-new-cluster`.  The group-communication timeouts are shorter than the
defaults (a cut-off node is declared gone after ~4 s, not ~15 s) so the tests
take less time; nothing else differs from a production recipe.  Everything
blocks (it runs in setUpClass and cleanups), every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import pymysql

from track.test.mariadb import MARIADBD_SKIP, POLL_INTERVAL, ThrowawayMariaDB, free_port, required


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


PROVIDER = "/usr/lib/galera/libgalera_smm.so"
RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
GALERA_SKIP: str | None = MARIADBD_SKIP or required(next(
    (f"{path} is missing (apt-get install {package})"
     for path, package in ((PROVIDER, "galera-4"), (RSYNC, "rsync")) if not os.path.exists(path)),
    None,
))
SYNC_TIMEOUT = 120.0
# The rsync daemon of a state transfer, started by root, would run as
# `nobody` and could not write the datadir: run the nodes as mysql (Debian's
# mariadb-server account) when we are root.
NODE_USER = "mysql" if os.geteuid() == 0 and _has_user("mysql") else None
# Group communication: how soon a silent node is suspected and dropped.
EVS_OPTIONS = "evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.install_timeout=PT4S"


class GaleraNode(ThrowawayMariaDB):
    """One node: a private mariadbd with the wsrep settings of `cluster`."""

    def __init__(self, basedir: str, index: int, group_ports: Sequence[int]) -> None:
        self.index = index
        self.isolated = False
        self.group_port = group_ports[index]
        self.ist_port = free_port()
        self.sst_port = free_port()
        super().__init__(basedir, options=galera_options(index, group_ports, self.ist_port, self.sst_port),
                         user=NODE_USER)

    def status(self, name: str) -> str | None:
        """A wsrep status variable, or None when the node does not answer."""
        try:
            conn = self.connect(timeout=3)
        except (OSError, pymysql.err.MySQLError):
            return None
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
                row = cur.fetchone()
        except pymysql.err.MySQLError:
            return None
        finally:
            conn.close()
        return None if row is None else str(row[1])

    def isolate(self, on: bool) -> None:
        """Cut this node off from the others' group traffic, or reconnect it."""
        self.execute(f"SET GLOBAL wsrep_provider_options='gmcast.isolate={1 if on else 0}'")
        self.isolated = on

    @property
    def label(self) -> str:
        """host:port as track's /healthz names this node."""
        return f"127.0.0.1:{self.port}"


def galera_options(index: int, group_ports: Sequence[int], ist_port: int, sst_port: int) -> tuple[str, ...]:
    """The command-line form of the my.cnf lines that make a Galera node
    (the README's "Many instances, one cluster" shows them as my.cnf)."""
    members = ",".join(f"127.0.0.1:{p}" for p in group_ports)
    return (
        "--wsrep-on=ON",
        f"--wsrep-provider={PROVIDER}",
        "--wsrep-cluster-name=track-test",
        f"--wsrep-cluster-address=gcomm://{members}",
        f"--wsrep-node-name=node{index + 1}",
        "--wsrep-node-address=127.0.0.1",
        f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{group_ports[index]};"
        f"ist.recv_addr=127.0.0.1:{ist_port};gcache.size=64M;{EVS_OPTIONS}",
        "--wsrep-sst-method=rsync",
        f"--wsrep-sst-receive-address=127.0.0.1:{sst_port}",
        "--binlog-format=ROW",
        "--innodb-autoinc-lock-mode=2",
        "--default-storage-engine=InnoDB",
    )


class GaleraCluster:
    """Three Galera nodes under `basedir`; `start()` forms the cluster."""

    def __init__(self, basedir: str, size: int = 3) -> None:
        self.basedir = os.path.abspath(basedir)
        group_ports = [free_port() for _ in range(size)]
        self.nodes = [GaleraNode(os.path.join(self.basedir, f"node{i + 1}"), i, group_ports)
                      for i in range(size)]

    def start(self) -> None:
        """Install one datadir, copy it to the others, bootstrap the first
        node, join the others (each by a state transfer), and wait until all
        are Synced members of one primary component."""
        first = self.nodes[0]
        first.install()
        for node in self.nodes[1:]:
            shutil.copytree(first.datadir, node.datadir)
        first.start("--wsrep-new-cluster")
        for node in self.nodes[1:]:
            node.start()
        self.wait_synced()

    def wait_synced(self, nodes: Sequence[GaleraNode] | None = None, timeout: float = SYNC_TIMEOUT) -> None:
        """Until every node given (default all) is Synced in a primary
        component of all the running nodes."""
        nodes = self.nodes if nodes is None else nodes
        size = str(sum(1 for n in self.nodes if n.running))
        deadline = time.monotonic() + timeout
        while True:
            states = [(n.status("wsrep_local_state_comment"), n.status("wsrep_cluster_size"),
                       n.status("wsrep_cluster_status")) for n in nodes]
            if all(s == ("Synced", size, "Primary") for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Galera nodes not synced after {timeout}s: {states}")
            time.sleep(POLL_INTERVAL * 5)

    def wait_state(self, node: GaleraNode, expected: str, timeout: float = SYNC_TIMEOUT) -> None:
        """Until `node`'s wsrep_cluster_status is `expected` (non-Primary, Primary)."""
        deadline = time.monotonic() + timeout
        while (state := node.status("wsrep_cluster_status")) != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"node{node.index + 1} is {state!r}, not {expected!r}, after {timeout}s")
            time.sleep(POLL_INTERVAL)

    def heal(self) -> None:
        """Every node running, none cut off, all Synced: after a test that
        broke one, whatever state it left."""
        for node in self.nodes:
            if node.running and node.isolated:
                node.isolate(False)
            node.isolated = False
        for node in self.nodes:
            if not node.running:
                node.start()
        self.wait_synced()

    def dsn(self, database: str, prefer: int = 0) -> str:
        """A multi-host DSN listing every node, node `prefer` first."""
        order = self.nodes[prefer:] + self.nodes[:prefer]
        return f"mysql://root@{','.join(f'127.0.0.1:{n.port}' for n in order)}/{database}"

    def create_database(self, name: str) -> None:
        self.nodes[0].create_database(name)

    def execute(self, sql: str, args: Any = None, database: str | None = None) -> list[tuple[Any, ...]]:
        """On the first node that is up and a primary member."""
        for node in self.nodes:
            if node.running and node.status("wsrep_ready") == "ON":
                return node.execute(sql, args, database)
        raise RuntimeError("no Galera node takes queries")

    def read(self, sql: str, args: Any = None, database: str | None = None) -> list[tuple[Any, ...]]:
        """A SELECT that sees every transaction the cluster committed before
        it began, whichever node took it: on a Synced primary member, with
        wsrep_sync_wait=1 (the node first applies every write set it has
        been sent).  Without it a row committed through another node a
        moment ago may not be visible yet on this one."""
        candidates = [n for n in self.nodes if n.running and n.status("wsrep_ready") == "ON"]
        synced = [n for n in candidates if n.status("wsrep_local_state_comment") == "Synced"]
        failures = []
        for node in synced or candidates:
            try:
                conn = node.connect(database)
                try:
                    with conn.cursor() as cur:
                        cur.execute("SET SESSION wsrep_sync_wait = 1")
                        cur.execute(sql, args)
                        return list(cur.fetchall())
                finally:
                    conn.close()
            except (OSError, pymysql.err.MySQLError) as e:  # it broke meanwhile: the next one
                failures.append(f"node{node.index + 1}: {e!r}")
        raise RuntimeError(f"no Galera node takes queries: {failures}")

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.close()


def _self_test() -> None:
    """Form a cluster, write on one node, read on another, report the time."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="galera") as tmp:
        os.chmod(tmp, 0o755)  # the nodes run as mysql
        cluster = GaleraCluster(tmp)
        try:
            t = time.monotonic()
            cluster.start()
            print(f"3 nodes synced in {time.monotonic() - t:.1f}s; ports {[n.port for n in cluster.nodes]}")
            cluster.create_database("t")
            cluster.nodes[0].execute("CREATE TABLE x (id int PRIMARY KEY)", database="t")
            cluster.nodes[1].execute("INSERT INTO x VALUES (1)", database="t")
            print(cluster.nodes[2].execute("SELECT id FROM x", database="t"))
            t = time.monotonic()
            cluster.nodes[2].isolate(True)
            cluster.wait_state(cluster.nodes[2], "non-Primary")
            print(f"isolated in {time.monotonic() - t:.1f}s")
            cluster.nodes[2].isolate(False)
            cluster.wait_synced()
            print(f"rejoined after {time.monotonic() - t:.1f}s")
            cluster.nodes[1].kill()
            t = time.monotonic()
            cluster.nodes[1].start()
            cluster.wait_synced()
            print(f"killed node back in {time.monotonic() - t:.1f}s")
        finally:
            cluster.close()


if __name__ == "__main__":
    _self_test()
