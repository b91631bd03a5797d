"""The admin listener in this process (one worker): the feed the live page
polls, its bounded buffers, and what stays off the public listener."""

from __future__ import annotations

import json
import os
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from track.admin.health import merge_health
from track.admin.history import History
from track.admin.recent import Recent
from track.admin.service import AdminService
from track.admin.views import Counts
from track.fields.kinds import KINDS
from track.run.build import build_service
from track.run.config import Standalone, Worker
from track.run.options import Options
from track.storage.prepare import prepare_database
from track.test.rawhttp import connect, request
from track.test.support import client_pool, dsn_text, sqlite_dsn

FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}


def with_agent(agent: str) -> dict[str | bytes, str | bytes]:
    return {**FORM, "User-Agent": agent}


def serve_with_admin(case: TestCase, *more: str) -> tuple[int, int]:
    """The whole service, as twistd wires it, with --admin-http (and `more`
    options): the public port and the admin port."""
    dsn = sqlite_dsn(case)
    options = Options()
    options.parseOptions(["--http", "tcp:0:interface=127.0.0.1", "--admin-http", "tcp:0:interface=127.0.0.1",
                          "--dsn", dsn_text(dsn), "--spool-dir", os.path.abspath(case.mktemp()), *more])
    service = build_service(options.config, Standalone(), reactor, prepare_database(dsn))
    service.privilegedStartService()
    service.startService()
    case.addCleanup(service.stopService)
    admin = next(s for s in service if isinstance(s, AdminService))
    return service.port.getHost().port, admin.port.getHost().port


class FeedTests(TestCase):
    async def get_json(self, port: int, path: str) -> Any:
        response = await treq.get(f"http://127.0.0.1:{port}{path}", pool=client_pool(self))
        self.assertEqual(response.code, 200)
        return json.loads(await response.content())

    async def test_feed_shows_accepted_and_rejected_requests(self) -> None:
        public, admin = serve_with_admin(self)
        pool = client_pool(self)
        url = f"http://127.0.0.1:{public}/api/1.0/track/user/"
        opened = await self.get_json(admin, "/feed")  # the page opens
        self.assertEqual((opened["accepted"], opened["rejected"]), ([], []))
        ok = await treq.post(url, data=b"ProfileID=7&Region=eu&MessageID=feed-ok-1", headers=FORM, pool=pool)
        self.assertEqual(ok.code, 201)
        await ok.content()
        body = b"ProfileID=seven&Region=eu&Message=" + b"x" * 2000
        bad = await treq.post(url, data=body, headers=with_agent("game-client/2.1"), pool=pool)
        self.assertEqual(bad.code, 400)
        await bad.content()

        feed = await self.get_json(admin, "/feed")
        [accepted] = feed["accepted"]
        self.assertEqual((accepted["kind"], accepted["message_id"]), ("user", "feed-ok-1"))
        self.assertEqual({k: accepted["fields"][k] for k in ("ProfileID", "Region", "RemoteIP")},
                         {"ProfileID": 7, "Region": "eu", "RemoteIP": "127.0.0.1"})
        [rejected] = feed["rejected"]
        self.assertEqual(rejected["status"], 400)
        self.assertEqual(rejected["kind"], "user")
        self.assertEqual(rejected["error"]["fields"], {"ProfileID": "must be an integer",
                                                       "Message": "must be at most 45 characters"})
        self.assertEqual(rejected["client"], "127.0.0.1")
        self.assertEqual(rejected["user_agent"], "game-client/2.1")
        self.assertEqual(rejected["request"], body[:1024].decode())
        self.assertEqual(feed["kinds"]["user"]["accepted"], 1)
        self.assertEqual(feed["kinds"]["user"]["rejected"], 1)
        self.assertEqual(feed["status"]["health"]["database"], "up")
        self.assertEqual(len(feed["status"]["health"]["workers"]), 1)

    async def test_a_body_refused_by_its_length_is_on_the_page(self) -> None:
        """413 before the body is read (from Content-Length) is answered on
        the connection, not by a route: the page shows it all the same."""
        public, admin = serve_with_admin(self)
        client = await connect(public)
        client.send(request("/api/1.0/track/user/", b"", {"Content-Length": "999999999",
                                                          "Content-Type": "application/x-www-form-urlencoded"}))
        await client.closed
        self.assertEqual(client.statuses(), [413])
        feed = await self.get_json(admin, "/feed")
        [rejected] = feed["rejected"]
        self.assertEqual((rejected["kind"], rejected["status"], rejected["client"]), ("user", 413, "127.0.0.1"))
        self.assertEqual(rejected["error"]["error"], "body too large")

    async def test_a_page_that_opens_shows_what_was_accepted_before(self) -> None:
        """An event posted the moment before the page opens (as a test, or an
        operator, does) is on it: accepted events are kept, bounded, with
        the page closed too."""
        public, admin = serve_with_admin(self)
        pool = client_pool(self)
        url = f"http://127.0.0.1:{public}/api/1.0/track/user/"
        for body in (b"ProfileID=1&Region=eu&MessageID=before-1", b"ProfileID=x&Region=eu"):
            response = await treq.post(url, data=body, headers=FORM, pool=pool)
            await response.content()
        feed = await self.get_json(admin, "/feed")
        self.assertEqual([e["message_id"] for e in feed["accepted"]], ["before-1"])
        self.assertEqual([r["status"] for r in feed["rejected"]], [400])
        self.assertEqual(feed["kinds"]["user"]["accepted"], 1)

    async def test_a_rejection_shows_the_client_behind_a_trusted_proxy(self) -> None:
        public, admin = serve_with_admin(self, "--trusted-proxy", "127.0.0.1")
        pool = client_pool(self)
        url = f"http://127.0.0.1:{public}/api/1.0/track/user/"
        headers = {**FORM, "X-Forwarded-For": "198.51.100.7"}
        response = await treq.post(url, data=b"ProfileID=x&Region=eu", headers=headers, pool=pool)
        await response.content()
        feed = await self.get_json(admin, "/feed")
        self.assertEqual([r["client"] for r in feed["rejected"]], ["198.51.100.7"])

    def test_recording_stops_when_the_page_stops_looking(self) -> None:
        recent = Recent()
        recent.watch(100.0)
        recent.tick(104.0)
        self.assertTrue(recent.live)
        recent.tick(105.0)
        self.assertFalse(recent.live)

    async def test_event_contents_only_on_the_admin_listener(self) -> None:
        public, admin = serve_with_admin(self)
        pool = client_pool(self)
        for path in ("/", "/feed", "/admin.js"):
            response = await treq.get(f"http://127.0.0.1:{public}{path}", pool=pool)
            await response.content()
            self.assertEqual(response.code, 404, path)
        for path in ("/metrics", "/healthz", "/readyz"):  # both listeners serve these
            for port in (public, admin):
                response = await treq.get(f"http://127.0.0.1:{port}{path}", pool=pool)
                await response.content()
                self.assertEqual(response.code, 200, (port, path))
        page = await treq.get(f"http://127.0.0.1:{admin}/", pool=pool)
        html = await page.text()
        self.assertIn('<script src="admin.js"', html)
        self.assertNotIn("http", html.split("<body>")[0].replace("http-equiv", ""))  # nothing from another host
        self.assertIn(b"script-src 'self'", page.headers.getRawHeaders("content-security-policy")[0].encode())

    def test_recent_is_bounded_newest_first(self) -> None:
        recent = Recent(keep=3)
        recent.watch(0.0)
        kind = KINDS["user"]
        for n in range(5):
            row = tuple({"ProfileID": n, "Region": "eu", "MessageID": f"m-{n}"}.get(c) for c in kind.columns)
            recent.accepted("user", row)
        ids = [e["message_id"] for e in recent.snapshot(KINDS)["accepted"]]
        self.assertEqual(ids, ["m-4", "m-3", "m-2"])

    def test_rates_per_kind_from_the_counters(self) -> None:
        clock = Clock()
        counts = {"user": {"accepted": 0.0, "rejected": 0.0}}
        history = History(lambda: {k: dict(v) for k, v in counts.items()}, clock)
        history.sample()
        clock.advance(2)
        counts["user"] = {"accepted": 10.0, "rejected": 1.0}
        history.sample()
        rates = history.rates()
        self.assertEqual(rates["kinds"], {"user": {"accepted": [5.0], "rejected": [0.5]}})
        self.assertEqual(rates["t"], [2.0])

    def test_rates_cover_a_fixed_window_on_the_clock(self) -> None:
        """Ten minutes of samples: "last 5 minutes" draws only the last
        300 s of them, every sample; "last hour" all ten minutes, from
        every 12th; rejection reasons get rates of their own."""
        clock = Clock()
        counts: Counts = {"user": {"accepted": 0.0, "rejected": 0.0}}
        history = History(lambda: {k: dict(v) for k, v in counts.items()}, clock)
        for n in range(301):  # 600 s, every 2 s
            counts["user"] = {"accepted": 4.0 * n, "rejected": 2.0 * n, "rejected:invalid": 2.0 * n}
            history.sample()
            clock.advance(2)
        clock.advance(-2)  # now: the last sample's time, 600
        five = history.rates(300)
        self.assertEqual((five["t"][0], five["t"][-1], len(five["t"])), (300.0, 600.0, 151))
        self.assertEqual(set(five["kinds"]["user"]["accepted"]), {2.0})
        self.assertEqual(set(five["reasons"]["invalid"]), {1.0})
        hour = history.rates(3600)
        self.assertEqual((hour["t"][-1], hour["t"][1] - hour["t"][0]), (600.0, 24.0))
        self.assertEqual(set(hour["kinds"]["user"]["rejected"]), {1.0})

    def test_health_summed_over_workers(self) -> None:
        def report(worker: int, events: int, up: str) -> dict[str, Any]:
            return {"worker": worker, "pid": 100 + worker, "started": 0.0, "ready": True,
                    "health": {"status": "ok", "database": up,
                               "spool": {"events": events, "bytes": 10 * events, "writable": True},
                               "dead_letter": {"events": 1, "corrupt_bytes": 0}}}

        merged = merge_health([report(0, 3, "up"), report(1, 4, "down")])
        self.assertEqual(merged["spool"], {"events": 7, "bytes": 70, "writable": True})
        self.assertEqual(merged["dead_letter"], {"events": 2, "corrupt_bytes": 0})
        self.assertEqual(merged["database"], "down")
        self.assertEqual([w["spool"]["events"] for w in merged["workers"]], [3, 4])


class AdminOptionsTests(TestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_off_by_default(self) -> None:
        self.assertIsNone(self.parse().config.admin_endpoint)

    def test_bare_port_binds_loopback_only(self) -> None:
        self.assertEqual(self.parse("--admin-http", "8081").config.admin_endpoint, "tcp:8081:interface=127.0.0.1")
        self.assertEqual(self.parse("--admin-http", ":8081").config.admin_endpoint, "tcp:8081:interface=127.0.0.1")

    def test_other_forms_as_http(self) -> None:
        # Beyond loopback only with a token (track/test/admin/test_guard.py).
        self.assertEqual(self.parse("--admin-http", "0.0.0.0:8081", "--admin-token", "t").config.admin_endpoint,
                         "tcp:8081:backlog=1024:interface=0.0.0.0")
        self.assertEqual(self.parse("--admin-http", "unix:/tmp/a.sock").config.admin_endpoint, "unix:/tmp/a.sock")

    def test_admin_keep_defaults_to_1000_and_reaches_the_workers(self) -> None:
        from track.run.workers import child_argv

        self.assertEqual(self.parse().config.admin_keep, 1000)
        worker = Worker(0, "/tmp/state", 1)
        self.assertIn("--admin-keep=50", child_argv(self.parse("--admin-keep", "50").config, worker))
        self.assertRaises(UsageError, self.parse, "--admin-keep", "0")
