"""The public /healthz tells an outsider nothing about the inside; the
admin listener's keeps every detail."""

from __future__ import annotations

import json

import treq
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.test.admin.test_feed import serve_with_admin
from track.test.support import client_pool
from track.web.health import public_health

FULL = {
    "status": "ok", "database": "down",
    "database_error": "(2003, \"Can't connect to MySQL server on 'db1.internal' (111)\")",
    "database_host": "db1.internal:3306",
    "database_hosts": [{"host": "db1.internal:3306", "state": "down", "error": "2003"}],
    "spool": {"events": 3, "bytes": 512, "writable": False,
              "error": "[Errno 28] No space left on device: '/var/lib/track/spool/segment-1'"},
    "dead_letter": {"events": 1, "corrupt_bytes": 0},
    "workers": [{"worker": 0, "pid": 4242, "database_host": "db1.internal:3306"}],
}


class PublicHealthTests(SynchronousTestCase):
    def test_only_status_database_and_counts_are_kept(self) -> None:
        self.assertEqual(public_health(FULL), {
            "status": "ok", "database": "down",
            "spool": {"events": 3, "bytes": 512, "writable": False},
            "dead_letter": {"events": 1, "corrupt_bytes": 0},
        })
        self.assertNotIn("db1", json.dumps(public_health(FULL)))
        self.assertNotIn("/var/lib", json.dumps(public_health(FULL)))


class ListenerTests(TestCase):
    async def test_public_healthz_has_no_path_admin_healthz_has_all(self) -> None:
        public, admin = serve_with_admin(self)
        pool = client_pool(self)
        outside = await (await treq.get(f"http://127.0.0.1:{public}/healthz", pool=pool)).json()
        self.assertEqual(set(outside), {"status", "database", "spool", "dead_letter"})
        self.assertEqual(outside["database"], "up")
        inside = await (await treq.get(f"http://127.0.0.1:{admin}/healthz", pool=pool)).json()
        self.assertIn("workers", inside)
        ready = await treq.get(f"http://127.0.0.1:{public}/readyz", pool=pool)
        self.assertEqual((ready.code, await ready.json()), (200, {"ready": True}))
