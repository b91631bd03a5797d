"""Three `twistd track` instances on a real 3-node Galera cluster, each with
a multi-host DSN that prefers a different node, while nodes are killed, cut
off and restarted under load.

What a user would see: every 201 is a row in the cluster, once; the instance
whose node breaks keeps answering 201 with its events going into the other
nodes (not into its spool), at most 1% of its answers are not 201, and it
goes back to its own node once that node is synced again.

The cluster is started once for the class (about 10-40 s) and healed after
every test; the instances are started per test.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.cluster.load import FORM, PATH, HealthLog, Load, get_health, in_order
from track.test.galera import GALERA_SKIP, GaleraCluster, GaleraNode
from track.test.process import ADMIN_ANY_PORT, TwistdTrack, wait_until

DATABASE = "track"
# Short timeouts: a hung node costs a write at most these seconds.
DSN_OPTIONS = "?connect_timeout=2&read_timeout=3&write_timeout=3"
MOST_NOT_201 = 0.01
WARM = 30  # 201s each instance has given before a node is broken
DURING = 100  # 201s the instance of the broken node must give while it is broken


class GaleraTests(TestCase):
    skip = GALERA_SKIP
    timeout = 400
    shared: ClassVar[GaleraCluster | None] = None
    remaining: ClassVar[int] = 0
    base: ClassVar[str] = ""

    def setUp(self) -> None:
        self.cluster = self._shared_cluster()
        self.addCleanup(self._release)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 8
        self.addCleanup(self.pool.closeCachedConnections)

    @classmethod
    def _shared_cluster(cls) -> GaleraCluster:
        if cls.shared is None:
            # In the system's temporary directory, not under trial's: the
            # nodes run as mysql, which cannot reach a private working
            # directory (CI runs trial in a `mktemp -d`, mode 0700).
            base = tempfile.mkdtemp(prefix="track-galera-")
            os.chmod(base, 0o755)
            cls.base = base
            cluster = GaleraCluster(base)
            try:
                cluster.start()
                cluster.create_database(DATABASE)
            except BaseException:
                cluster.close()
                raise
            cls.shared = cluster
            cls.remaining = len([name for name in dir(cls) if name.startswith("test_")])
        return cls.shared

    def _release(self) -> None:
        """Heal the cluster for the next test; stop it after the last."""
        cls = type(self)
        cls.remaining -= 1
        cluster = cls.shared
        if cluster is None:
            return
        if cls.remaining > 0:
            cluster.heal()
            return
        cls.shared = None
        cluster.close()
        shutil.rmtree(cls.base, ignore_errors=True)

    async def instances(self) -> list[str]:
        """Three instances, instance i preferring node i; started one after
        another, so that the first one creates the tables."""
        bases = []
        self.admin: dict[str, str] = {}
        self.procs: dict[str, TwistdTrack] = {}
        for i in range(len(self.cluster.nodes)):
            cwd = os.path.abspath(self.mktemp())
            os.makedirs(cwd)
            proc = TwistdTrack(["--dsn", self.cluster.dsn(DATABASE, prefer=i) + DSN_OPTIONS,
                                "--http", "tcp:0:interface=127.0.0.1", *ADMIN_ANY_PORT], cwd)
            self.addCleanup(self._keep_log, proc, cwd)
            self.addCleanup(proc.stop)
            bases.append(await proc.ready)
            self.procs[bases[-1]] = proc
            # /healthz with every detail (hosts) is the admin listener's.
            self.admin[bases[-1]] = await proc.admin()
        return bases

    @staticmethod
    def _keep_log(proc: TwistdTrack, cwd: str) -> None:
        """The instance's log beside its spool, for a failure's post-mortem."""
        with open(os.path.join(cwd, "twistd.log"), "wb") as f:
            f.write(proc.output)

    def stored(self, prefix: str) -> dict[str, int]:
        """MessageID -> how many rows have it, for the IDs starting with `prefix`,
        as the cluster has them: read with wsrep_sync_wait, so a row committed
        through any node before the read is seen (cluster.read)."""
        rows = self.cluster.read(
            "SELECT MessageID, COUNT(*) FROM UserEvent WHERE MessageID LIKE %s GROUP BY MessageID",
            (prefix + "%",), database=DATABASE)
        return {m: int(n) for m, n in rows}

    async def loads(self, bases: Sequence[str], prefix: str) -> list[Load]:
        loads = [Load(base, f"{prefix}{i}", self.pool) for i, base in enumerate(bases)]
        for load in loads:
            load.start()
            self.addCleanup(load.stop)
        await wait_until(lambda: all(len(load.acked) >= WARM for load in loads), "201s from every instance", 60)
        return loads

    async def check_all_stored_once(self, bases: Sequence[str], loads: Sequence[Load], prefix: str) -> None:
        """Every 201 is one row; at most 1% of each instance's answers were not 201."""
        for load in loads:
            await load.stop()
        for base in bases:  # anything spooled is replayed first (bounded)
            clock: Any = reactor
            deadline = clock.seconds() + 60
            while (await get_health(self.admin[base], self.pool))["spool"]["events"]:
                self.assertLess(clock.seconds(), deadline, f"{base}: spool not replayed in 60 s")
                await deferLater(clock, 0.2, lambda: None)
        stored = await deferToThread(self.stored, prefix)
        for load in loads:
            acked = load.acked
            self.assertGreater(len(acked), WARM)
            missing = [m for m in acked if stored.get(m) != 1]
            if missing:  # the evidence, for a failure seen once in CI and not reproduced since
                self.fail(f"{load.base}: 201s not stored once: {[(m, stored.get(m, 0)) for m in missing]}\n"
                          + await self.post_mortem(missing))
            failed = load.failed
            self.assertLessEqual(len(failed), MOST_NOT_201 * len(load.answers),
                                 f"{load.base}: {len(failed)} of {len(load.answers)} not 201: {failed[:10]}")

    async def post_mortem(self, missing: Sequence[str]) -> str:
        """Each instance's spool and dead letters, and its log lines that
        are not INFO (or that name a missing MessageID)."""
        out = []
        for base, proc in self.procs.items():
            health = await get_health(self.admin[base], self.pool)
            out.append(f"== {base}: {json.dumps(health)[:800]}")
            for line in proc.output.decode("utf-8", "replace").splitlines():
                if "#info]" not in line or any(m in line for m in missing):
                    out.append(line[:400])
        return "\n".join(out[-200:])

    async def test_one_message_id_through_three_nodes_is_stored_once(self) -> None:
        """The same MessageID posted to the three instances at once (so to the
        three nodes at once), many times in parallel: 201 everywhere, one row."""
        bases = await self.instances()
        for i, base in enumerate(bases):
            health = await get_health(self.admin[base], self.pool)
            self.assertEqual(health["database_host"], self.cluster.nodes[i].label)
        ids = [f"same-{k}" for k in range(60)]

        async def post(base: str, message_id: str) -> int:
            body = f"ProfileID=1&Region=eu&MessageID={message_id}".encode()
            response = await treq.post(base + PATH, data=body, headers=FORM, pool=self.pool, timeout=30)
            await response.content()
            code: int = response.code
            return code

        codes: list[int] = []
        for start in range(0, len(ids), 10):
            results: list[tuple[bool, int]] = await DeferredList(
                [Deferred.fromCoroutine(post(base, m)) for m in ids[start:start + 10] for base in bases
                 for _ in range(2)],
                fireOnOneErrback=True, consumeErrors=True)
            codes += [code for _, code in results]
        self.assertEqual(codes, [201] * len(ids) * len(bases) * 2)
        stored = await deferToThread(self.stored, "same-")
        self.assertEqual(stored, {m: 1 for m in ids})

    async def broken_node(self, prefix: str, brk: Callable[[GaleraNode], None],
                          heal: Callable[[GaleraNode], None]) -> None:
        """Node 0 breaks under load and heals; instance 0 prefers it."""
        node = self.cluster.nodes[0]
        bases = await self.instances()
        loads = await self.loads(bases, prefix)
        health = HealthLog(self.admin[bases[0]], self.pool)
        self.addCleanup(health.stop)
        await deferToThread(brk, node)
        broken_at = len(loads[0].acked)
        await wait_until(lambda: len(loads[0].acked) >= broken_at + DURING,
                         "201s from the instance whose node is broken", 120)
        # Those events are in the cluster already, not in the spool.
        during = loads[0].acked[broken_at:]
        now = await get_health(self.admin[bases[0]], self.pool)
        self.assertNotEqual(now["database_host"], node.label)
        self.assertIn({"host": node.label, "state": "down"},
                      [{k: h[k] for k in ("host", "state")} for h in now["database_hosts"]])
        self.assertEqual(now["spool"]["events"], 0)
        stored = await deferToThread(self.stored, prefix + "0")
        self.assertEqual([m for m in during if stored.get(m) != 1], [])
        await deferToThread(heal, node)
        await wait_until(lambda: bool(health.samples) and health.samples[-1].get("database_host") == node.label,
                         "the instance to take its node back", 60)
        back_at = len(loads[0].acked)
        await wait_until(lambda: len(loads[0].acked) >= back_at + WARM, "201s after the node came back", 60)
        await self.check_all_stored_once(bases, loads, prefix)
        await health.stop()
        self.assertEqual(health.most_spooled(), 0)
        hosts = in_order(health.hosts_in_use())
        self.assertEqual((hosts[0], hosts[-1]), (node.label, node.label), hosts)
        self.assertGreater(len(hosts), 2, hosts)

    async def test_node_killed_under_load(self) -> None:
        def restart(node: GaleraNode) -> None:
            node.start()
            self.cluster.wait_synced()

        await self.broken_node("kill", GaleraNode.kill, restart)

    async def test_node_cut_off_from_the_cluster(self) -> None:
        def isolate(node: GaleraNode) -> None:
            node.isolate(True)
            self.cluster.wait_state(node, "non-Primary")

        def rejoin(node: GaleraNode) -> None:
            node.isolate(False)
            self.cluster.wait_synced()

        await self.broken_node("isolate", isolate, rejoin)

    async def test_rolling_restart_under_load(self) -> None:
        bases = await self.instances()
        loads = await self.loads(bases, "roll")

        def restart(node: GaleraNode) -> None:
            node.stop()
            self.cluster.wait_synced([n for n in self.cluster.nodes if n is not node])
            node.start()
            self.cluster.wait_synced()

        for node in self.cluster.nodes:
            marks = [len(load.acked) + WARM for load in loads]
            await deferToThread(restart, node)

            def answering(marks: list[int] = marks) -> bool:
                return all(len(load.acked) >= m for load, m in zip(loads, marks, strict=True))

            await wait_until(answering, "201s from every instance after a restart", 60)
        await self.check_all_stored_once(bases, loads, "roll")
