"""`--rate-limit N`: the token buckets on a Clock, the HTTP answers in
memory, and two clients behind a trusted proxy on a real socket."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import treq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.metrics import Metrics
from track.pipeline.batcher import Batcher
from track.run.config import Worker
from track.run.options import Options
from track.run.workers import child_argv
from track.test.support import client_pool, execute, serve, sqlite_dsn
from track.test.web.test_app import FORM, URL, Database, HeaderDict, stub_treq
from track.web.app import TrackApp
from track.web.clients.clientip import parse_networks
from track.web.clients.ratelimit import RateLimiter, retry_after


class BucketTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)  # a time like the reactor's: float steps of about 2e-7 s

    def test_a_burst_of_twice_the_rate_then_the_rate(self) -> None:
        limiter = RateLimiter(5, self.clock)
        self.assertEqual([limiter.take("a") for _ in range(10)], [0.0] * 10)
        self.assertAlmostEqual(limiter.take("a"), 0.2)  # one token comes back in 1/5 s
        self.clock.advance(0.2)
        self.assertEqual(limiter.take("a"), 0.0)
        self.assertGreater(limiter.take("a"), 0.0)
        # A refused request spends nothing: after 1/5 s exactly one goes.
        self.clock.advance(0.2)
        self.assertEqual(limiter.take("a"), 0.0)
        # An idle client refills up to the burst, never beyond.
        self.clock.advance(3600)
        self.assertEqual([limiter.take("a") for _ in range(11)].count(0.0), 10)

    def test_clients_have_their_own_buckets(self) -> None:
        limiter = RateLimiter(1, self.clock)
        self.assertEqual([limiter.take("a"), limiter.take("a")], [0.0, 0.0])
        self.assertGreater(limiter.take("a"), 0.0)
        self.assertEqual([limiter.take("b"), limiter.take("b")], [0.0, 0.0])

    def test_a_request_costs_its_events(self) -> None:
        limiter = RateLimiter(10, self.clock)  # burst 20
        self.assertEqual(limiter.take("a", 15), 0.0)
        self.assertAlmostEqual(limiter.take("a", 10), 0.5)  # 5 left, 10 needed: 5 more at 10/s
        self.assertEqual(limiter.take("a", 5), 0.0)

    def test_a_batch_over_the_burst_goes_when_full_and_leaves_a_debt(self) -> None:
        limiter = RateLimiter(10, self.clock)  # burst 20
        self.assertEqual(limiter.take("a", 100), 0.0)
        # 80 events owed: the next event waits until the bucket is back at 1.
        self.assertAlmostEqual(limiter.take("a"), 8.1)
        self.clock.advance(8.1)
        self.assertEqual(limiter.take("a"), 0.0)

    def test_memory_is_bounded_least_recently_seen_first(self) -> None:
        limiter = RateLimiter(1, self.clock, max_clients=3)
        for client in ("a", "b", "c"):
            limiter.take(client, 2)
        limiter.take("a")  # refused, but seen: "b" is now the oldest
        limiter.take("d")
        self.assertEqual(len(limiter), 3)
        self.assertGreater(limiter.take("a"), 0.0)  # kept, still empty
        self.assertGreater(limiter.take("c"), 0.0)
        self.assertEqual(limiter.take("b"), 0.0)  # forgotten: a fresh bucket
        for n in range(1000):
            limiter.take(f"10.0.{n // 256}.{n % 256}")
        self.assertEqual(len(limiter), 3)

    def test_retry_after_is_whole_seconds_at_least_one(self) -> None:
        self.assertEqual([retry_after(s) for s in (0.01, 1.0, 1.2, 8.1)], [1, 1, 2, 9])

    def test_the_option(self) -> None:
        def parsed(*args: str) -> Any:
            options = Options()
            options.parseOptions(["--dsn", "sqlite:///tmp/x.sqlite3", *args])
            return options

        self.assertEqual(parsed().config.rate_limit, 0.0)  # off by default
        self.assertEqual(parsed("--rate-limit", "2.5").config.rate_limit, 2.5)
        for bad in ("-1", "x", "inf"):
            self.assertRaises(usage.UsageError, parsed, "--rate-limit", bad)
        # Each --workers process gets the same limit (per process).
        self.assertIn("--rate-limit=7.0", child_argv(parsed("--rate-limit", "7").config, Worker(0, "/tmp/state", 1)))


class AppTests(SynchronousTestCase):
    """The answers, in memory, with the limiter on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database()
        self.metrics = Metrics()
        batcher = Batcher(self.db.insert, self.clock, flush_interval=0.002, insert_together=self.atomic_insert)
        self.app = TrackApp(batcher, self.clock, trusted_proxies=parse_networks(["127.0.0.0/8"]),
                            metrics=self.metrics, rate_limiter=RateLimiter(2, self.clock))
        self.treq = stub_treq(self.app.resource())

    def atomic_insert(self, work: Sequence[tuple[Any, Sequence[tuple[Any, ...]]]]) -> Deferred[Any]:
        for event, rows in work:
            self.db.insert(event, rows)
        return succeed([])  # nothing refused

    def post(self, client: str, path: str, body: str, headers: HeaderDict = FORM) -> tuple[Any, bytes]:
        d = self.treq.post(f"{URL}/{path}", data=body.encode(), headers={**headers, "X-Forwarded-For": client})
        self.treq.flush()
        self.clock.advance(0.002)
        self.treq.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(response.content())

    def user(self, client: str, n: int) -> int:
        response, _ = self.post(client, "user/", f"ProfileID={n}&Region=eu")
        return int(response.code)

    def stored(self) -> list[int]:
        return sorted(r[0] for r in self.db.rows.get("UserEvent", []))

    def test_over_the_rate_is_429_with_retry_after_and_nothing_stored(self) -> None:
        self.assertEqual([self.user("203.0.113.1", n) for n in range(4)], [201] * 4)  # the burst: 2 x 2
        response, body = self.post("203.0.113.1", "user/", "ProfileID=99&Region=eu")
        self.assertEqual((response.code, response.phrase), (429, b"Too Many Requests"))  # not "Unknown Status"
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(json.loads(body), {"error": "too many events from this client", "retry_after": 1,
                                            "events_per_second": 2.0})
        self.assertEqual(self.user("198.51.100.7", 50), 201)  # another client is not affected
        self.clock.advance(0.5)  # one token back
        self.assertEqual([self.user("203.0.113.1", n) for n in (10, 11)], [201, 429])
        self.assertEqual(self.stored(), [0, 1, 2, 3, 10, 50])

    def test_a_forged_x_forwarded_for_does_not_dodge_the_limit(self) -> None:
        # From a peer that is not a trusted proxy, X-Forwarded-For is not
        # believed: every forged address shares the peer's one bucket.
        self.app.addresses.trusted_proxies = ()
        codes = [self.user(f"203.0.113.{n}", n) for n in range(6)]
        self.assertEqual(codes, [201] * 4 + [429] * 2)
        self.assertEqual(self.stored(), [0, 1, 2, 3])

    def test_a_batch_counts_its_events(self) -> None:
        def batch(client: str, first: int, count: int) -> int:
            events = [{"type": "user", "ProfileID": first + i, "Region": "eu"} for i in range(count)]
            response, _ = self.post(client, "batch/", json.dumps({"events": events}),
                                    {"Content-Type": "application/json"})
            return int(response.code)

        self.assertEqual(batch("203.0.113.2", 0, 3), 201)
        self.assertEqual(self.user("203.0.113.2", 3), 201)  # the 4th event of the burst
        self.assertEqual(batch("203.0.113.2", 10, 2), 429)  # all or nothing
        self.assertEqual(self.user("203.0.113.2", 20), 429)
        self.assertEqual(self.stored(), [0, 1, 2, 3])
        text = self.metrics.render().decode()
        # The batch's events under their own type, the request once.
        self.assertIn('track_rate_limited_total{type="user"} 3.0', text)
        self.assertIn('track_events_rejected_total{reason="rate_limited",type="user"} 3.0', text)
        self.assertNotIn('type="batch"', text)
        self.assertIn('track_batch_requests_total{result="rate_limited"} 1.0', text)
        self.assertIn('track_batch_requests_total{result="accepted"} 1.0', text)

    def test_off_by_default(self) -> None:
        app = TrackApp(Batcher(self.db.insert, self.clock, flush_interval=0.002), self.clock)
        self.assertIsNone(app.rate_limiter)
        self.treq = stub_treq(app.resource())
        self.assertEqual({self.user("203.0.113.3", n) for n in range(50)}, {201})


class TwoClientsBehindAProxyTests(TestCase):
    """On a real socket, through the whole service: `--trusted-proxy` names
    the proxy, X-Forwarded-For the two clients behind it."""

    async def test_the_flooding_client_gets_429s_and_the_other_none(self) -> None:
        dsn = sqlite_dsn(self)
        port, _ = serve(self, dsn, trusted_proxy="127.0.0.1", rate_limit=2.5)  # bursts of 5
        pool = client_pool(self)
        url = f"http://127.0.0.1:{port}/api/1.0/track/user/"

        async def post(client: str, n: int) -> int:
            response = await treq.post(url, data=f"ProfileID={n}&Region=eu&Referrer={client}".encode(),
                                       headers={**FORM, "X-Forwarded-For": client}, pool=pool)
            await response.content()
            if response.code == 429:
                self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
            return int(response.code)

        codes: dict[int, int] = {}
        for n in range(30):
            codes[n] = await post("203.0.113.66", n)
            if n % 10 == 0:
                self.assertEqual(await post("198.51.100.5", 1000 + n), 201)
        self.assertEqual(set(codes.values()), {201, 429})
        self.assertGreaterEqual(list(codes.values()).count(429), 1)
        accepted = sorted(n for n, code in codes.items() if code == 201)
        rows = execute(dsn, "SELECT ProfileID, RemoteIP FROM UserEvent ORDER BY ProfileID")
        # Exactly the 201s are stored, with the address the proxy named; no 429 left a row.
        self.assertEqual(rows, [(n, "203.0.113.66") for n in accepted]
                         + [(1000 + n, "198.51.100.5") for n in (0, 10, 20)])
        response = await treq.get(f"http://127.0.0.1:{port}/metrics", pool=pool)
        text = (await response.content()).decode()
        self.assertIn(f'track_rate_limited_total{{type="user"}} {30 - len(accepted)}.0', text)
