"""`--workers 2`: /metrics and /healthz speak for the whole service on every
scrape, whichever worker answers it, and counters never go back, not even
when a worker is killed and restarted.

Every scrape is a new connection, so the kernel hands it to either worker
(before workers shared their numbers, six scrapes after 60 events read 33,
27, 33, 27, 33, 33)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.mariadb import MYSQL_SKIP
from track.test.process import TwistdTrack, port_of, wait_until
from track.test.support import mysql_dsn_text, reset_mysql

_STARTED = re.compile(rb"worker (\d) started \(pid (\d+)\)")
_ADMIN = re.compile(rb"admin page on http://127\.0\.0\.1:(\d+)/")
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
SCRAPES = 20


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


class WorkersNumbersTests(TestCase):
    timeout = 180

    def setUp(self) -> None:
        # Not persistent: every request is a new connection, to either worker.
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    async def start(self, dsn: str, *more: str) -> tuple[int, int]:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.proc = TwistdTrack(["--dsn", dsn, "--http", "tcp:0:interface=127.0.0.1", "--workers", "2",
                                 "--admin-http", "tcp:0:interface=127.0.0.1", *more], cwd)
        self.addCleanup(self.proc.stop)
        base = await self.proc.ready
        await wait_until(lambda: len(self.pids()) == 2 and self.proc.output.count(b"track listening on") >= 3
                         and _ADMIN.search(self.proc.output) is not None, "two workers and the admin page")
        admin = _ADMIN.search(self.proc.output)
        assert admin is not None
        return port_of(base), int(admin.group(1))

    def pids(self) -> dict[int, int]:
        return {int(w): int(p) for w, p in _STARTED.findall(self.proc.output)}

    async def post(self, port: int, n: int) -> None:
        response = await treq.post(f"http://127.0.0.1:{port}/api/1.0/track/user/",
                                   data=f"ProfileID={n}&Region=eu&MessageID=agg-{n}".encode(),
                                   headers=FORM, pool=self.pool)
        await response.content()
        self.assertEqual(response.code, 201)

    async def get(self, port: int, path: str) -> Any:
        response = await treq.get(f"http://127.0.0.1:{port}{path}", pool=self.pool)
        self.assertEqual(response.code, 200)
        return await response.text()

    async def accepted(self, port: int) -> float:
        text = await self.get(port, "/metrics")
        return samples(text, "track_events_accepted_total").get((("type", "user"),), 0.0)

    async def test_metrics_sum_every_worker_on_every_scrape_and_survive_a_restart(self) -> None:
        if MYSQL_SKIP:
            self.skipTest(MYSQL_SKIP)
        reset_mysql(self)
        public, admin = await self.start(mysql_dsn_text(self))
        for n in range(40):
            await self.post(public, n)
        seen = [await self.accepted(public) for _ in range(SCRAPES)]
        seen += [await self.accepted(admin) for _ in range(5)]
        self.assertEqual(seen, [40.0] * (SCRAPES + 5))
        text = await self.get(admin, "/metrics")
        self.assertEqual(samples(text, "track_worker_up"), {(("worker", "0"),): 1.0, (("worker", "1"),): 1.0})

        first = self.pids()
        killed = time.time()
        os.kill(first[0], signal.SIGKILL)
        await wait_until(lambda: self.pids().get(0) not in (None, first[0]), "worker 0 to be restarted")
        await wait_until(lambda: self.proc.output.count(b"track listening on") >= 4, "the new worker to listen")
        during = [await self.accepted(public) for _ in range(SCRAPES)]
        self.assertEqual(during, [40.0] * SCRAPES)  # the dead worker's counts stay in the sum
        for n in range(40, 80):
            await self.post(public, n)
        after = [await self.accepted(public) for _ in range(SCRAPES)]
        self.assertEqual(after, [80.0] * SCRAPES)
        self.assertEqual(await self.accepted(admin), 80.0)
        # The page says so: worker 0 was started again once, after the kill.
        workers: list[Any] = []

        async def both_reported() -> bool:
            workers[:] = json.loads(await self.get(admin, "/feed"))["status"]["health"]["workers"]
            return len(workers) == 2

        for _ in range(200):  # each worker reports twice a second
            if await both_reported():
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual([(w["worker"], w["restarts"]) for w in workers], [(0, 1), (1, 0)])
        self.assertGreater(workers[0]["restarted"], killed)
        self.assertIsNone(workers[1]["restarted"])

    async def test_healthz_sums_the_spool_of_every_worker(self) -> None:
        """With the database unreachable each worker spools what it takes;
        /healthz (public and admin) counts both spools, on every scrape."""
        public, admin = await self.start("mysql://root@127.0.0.1:1/unreachable",
                                         "--spool-dir", os.path.abspath(self.mktemp()))
        for n in range(30):
            await self.post(public, n)
        # Each worker reports twice a second: once both have reported since
        # the last event (the admin listener, in the parent, reads only their
        # reports), every scrape of either counts every spooled event.
        posted = time.time()
        reports: list[Any] = []

        async def reported() -> bool:
            state = json.loads(await self.get(admin, "/healthz"))
            reports.append([(w["worker"], w["reported"], w["spool"]["events"]) for w in state["workers"]])
            return len(state["workers"]) == 2 and min(w["reported"] for w in state["workers"]) > posted

        while not await reported():
            self.assertLess(len(reports), 500, f"the workers never reported: {reports[-3:]}")
            await deferLater(reactor, 0.05, lambda: None)
        for _ in range(SCRAPES):
            state = json.loads(await self.get(public, "/healthz"))
            self.assertEqual(state["spool"]["events"], 30)
            self.assertEqual(state["database"], "down")
            self.assertNotIn("workers", state)  # the public /healthz: no pids, no hosts
        admin_state = json.loads(await self.get(admin, "/healthz"))
        self.assertEqual(admin_state["spool"]["events"], 30)
        per_worker = [w["spool"]["events"] for w in admin_state["workers"]]
        self.assertEqual((len(per_worker), sum(per_worker)), (2, 30))
        metrics = await self.get(public, "/metrics")
        self.assertEqual(samples(metrics, "track_spool_events"), {(): 30.0})
        self.assertEqual(samples(metrics, "track_database_up"), {(): 0.0})

    async def test_the_query_api_answers_for_every_worker_with_the_page_closed(self) -> None:
        """No page open, so no worker was writing its events out: the first
        GET /feed/events waits until each has, and finds every event, older
        than the newest 100 of each worker included."""
        if MYSQL_SKIP:
            self.skipTest(MYSQL_SKIP)
        reset_mysql(self)
        public, admin = await self.start(mysql_dsn_text(self))
        for n in range(250):
            await self.post(public, n)
        found = json.loads(await self.get(admin, "/feed/events?status=accepted"))
        self.assertEqual(sorted(e["message_id"] for e in found["accepted"]), sorted(f"agg-{n}" for n in range(250)))
        self.assertEqual({e["worker"] for e in found["accepted"]}, {0, 1})
        self.assertEqual(found["held"]["accepted"], 250)
        one = json.loads(await self.get(admin, "/feed/events?q=MessageID=agg-3"))
        self.assertEqual([e["message_id"] for e in one["accepted"]], ["agg-3"])
        page = json.loads(await self.get(admin, "/feed"))  # the page: each worker's newest 100
        self.assertEqual((len(page["accepted"]), page["held"]["accepted"]), (100, 250))
