"""The live page lists the kinds the service serves, in its order (custom
kinds of `--events` included): the feed names them, from the field tables
of one process or from the reports of the workers of `--workers N`."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import treq
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from track.admin.recent import Recent
from track.admin.shared import SharedHealth, WorkerReport, read_json, replace_json, worker_file
from track.admin.views import About, LocalView, SharedView
from track.fields.kinds import KINDS
from track.metrics import Metrics
from track.test.admin.test_feed import serve_with_admin
from track.test.support import client_pool

ABOUT = About("test", "sqlite://", 0.0)
# A kind beyond the original four (its fields do not matter here).
LEVEL_UP = dataclasses.replace(KINDS["user"], name="level_up", table="LevelUpEvent")


class Up:
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "database": "up"}

    def ready(self) -> bool:
        return True


class ServedTests(TestCase):
    async def test_the_feed_names_the_kinds_served_in_order(self) -> None:
        _, admin = serve_with_admin(self)
        response = await treq.get(f"http://127.0.0.1:{admin}/feed", pool=client_pool(self))
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(await response.content())["served"], list(KINDS))

    def test_one_process_serves_its_live_tables(self) -> None:
        tables = dict(KINDS)
        view = LocalView(ABOUT, Metrics(), Up(), Recent(), tables)
        self.assertEqual(view.served(), ["session", "user", "item", "purchase"])
        tables["level_up"] = LEVEL_UP  # a reload that adds a kind changes the tables in place
        self.assertEqual(view.served(), ["session", "user", "item", "purchase", "level_up"])

    def test_workers_report_what_they_serve_and_the_parent_merges_it(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        shared = SharedHealth(Up(), directory, 0, time.time())
        WorkerReport(shared, lambda: None, None, {**KINDS, "level_up": LEVEL_UP}, Clock()).report()
        self.assertEqual(read_json(worker_file(directory, 0))["kinds"],
                         ["session", "user", "item", "purchase", "level_up"])
        # A worker that serves another kind (while a reload reaches them one by one).
        replace_json(worker_file(directory, 1), {**read_json(worker_file(directory, 0)), "worker": 1,
                                                 "kinds": ["session", "user", "page_view"]})
        view = SharedView(ABOUT, directory, os.path.join(directory, "metrics"))
        self.assertEqual(view.served(), ["session", "user", "item", "purchase", "level_up", "page_view"])
        # Nothing on /healthz about it: the kinds are the page's.
        self.assertNotIn("kinds", json.dumps(view.health()))
