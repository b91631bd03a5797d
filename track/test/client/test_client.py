"""The client against a scripted collector: what it sends, when it retries,
what it gives up, and what it refuses to queue."""

from __future__ import annotations

import email.utils
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import Any

from twisted.trial.unittest import TestCase

from track.client import BACKOFF_MAX, BACKOFF_MIN, Client, InvalidEventError, QueueFull, backoff, retry_after
from track.client.importer import import_files
from track.fields.kinds import KINDS
from track.test.client.fakecollector import Answer, DeadPort, FakeCollector, stored
from track.test.process import child_env
from track.web.app import API_PREFIX
from track.web.openapi import openapi_document

USER = {"ProfileID": 1, "Region": "eu"}
WAIT = 30.0  # the longest a flush in these tests may take


def refuse(indexes: dict[int, dict[str, Any]]) -> Answer:
    return 400, {}, {"error": "invalid batch: nothing was stored",
                     "events": [{"index": i, **e} for i, e in indexes.items()]}


class ClientTestCase(TestCase):
    def collector(self, answer: Any = stored) -> FakeCollector:
        fake = FakeCollector(answer)
        self.addCleanup(fake.stop)
        return fake

    def client(self, url: str, **kwargs: Any) -> Client:
        client = Client(url, **kwargs)
        self.addCleanup(client.close, 5)
        return client


class TrackTests(ClientTestCase):
    def test_returns_the_callers_message_id_or_a_new_one(self) -> None:
        fake = self.collector()
        client = self.client(fake.url)
        mine = client.track("user", {**USER, "MessageID": "mine-1"})
        new = client.track("user", USER)
        empty = client.track("user", {**USER, "MessageID": ""})  # the collector would make one up per send
        self.assertEqual(mine, "mine-1")
        made = r"^[0-9a-f]{32}-[0-9a-f]+$"  # a random UUID for the process, and a counter
        self.assertRegex(new, made)
        self.assertRegex(empty, made)
        self.assertNotEqual(new, empty)
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(fake.sent_ids(), [mine, new, empty])
        sent = fake.requests[0].events[1]
        stamp = sent.pop("Timestamp")  # when track() was called, in epoch milliseconds
        self.assertEqual(sent, {"type": "user", **USER, "MessageID": new})
        self.assertLess(abs(stamp - time.time() * 1000), 60_000)
        sent_at = int(fake.requests[0].headers["Track-Sent-At"])  # when the request was sent
        self.assertTrue(stamp <= sent_at <= time.time() * 1000)

    def test_sent_at_false_sends_no_sent_at_so_timestamps_stay_as_given(self) -> None:
        """The import's mode: a line's time came from another clock, long
        ago; a SentAt would make the collector shift it by this clock's error."""
        fake = self.collector()
        client = self.client(fake.url, sent_at=False)
        client.track("user", {**USER, "Timestamp": "2026-12-01T10:00:00Z"})
        self.assertTrue(client.flush(WAIT))
        self.assertNotIn("Track-Sent-At", fake.requests[0].headers)
        self.assertEqual(fake.requests[0].events[0]["Timestamp"], "2026-12-01T10:00:00Z")

    def test_the_import_sends_no_sent_at(self) -> None:
        fake = self.collector()
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"type": "user", "ProfileID": 1, "Region": "eu", "Created": "2026-12-01 10:00:00"}\n')
        self.assertEqual(import_files(fake.url, [path], out=lambda line: None), 0)
        self.assertNotIn("Track-Sent-At", fake.requests[-1].headers)
        self.assertEqual(fake.requests[-1].events[0]["Timestamp"], "2026-12-01T10:00:00Z")

    def test_a_bad_event_names_each_bad_field_and_queues_nothing(self) -> None:
        fake = self.collector()
        client = self.client(fake.url)
        with self.assertRaises(ValueError) as caught:
            client.track("user", {"ProfileID": "x", "Colour": "red"})
        self.assertIsInstance(caught.exception, InvalidEventError)
        self.assertEqual(caught.exception.fields,
                         {"ProfileID": "must be an integer", "Region": "is required", "Colour": "unknown field"})
        self.assertIn("ProfileID: must be an integer", str(caught.exception))
        with self.assertRaises(ValueError) as kind:
            client.track("nothing", USER)
        self.assertIn("type", kind.exception.fields)
        self.assertEqual(client.pending, 0)
        ok = client.track("user", USER)
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(fake.sent_ids(), [ok])

    def test_required_fields_come_from_the_servers_field_tables(self) -> None:
        client = self.client(DeadPort().url)
        for name, kind in KINDS.items():
            with self.assertRaises(InvalidEventError) as caught:
                client.track(name, {})
            self.assertEqual(set(caught.exception.fields), {f.name for f in kind.fields if f.required}, name)

    def test_optional_fields_of_the_tables_are_known_without_a_list_here(self) -> None:
        fake = self.collector()
        client = self.client(fake.url)
        item = {"ProfileID": 1, "Region": "eu", "ItemName": "sword", "ItemType": "weapon", "IsUGC": False}
        with self.assertRaises(InvalidEventError) as caught:
            client.track("item", {**item, "IsRented": "maybe", "Language": "x" * 17})
        self.assertEqual(set(caught.exception.fields), {"IsRented", "Language"})
        client.track("item", {**item, "IsRented": True, "Language": "de"})
        self.assertTrue(client.flush(WAIT))
        self.assertEqual((fake.requests[-1].events[-1]["IsRented"], fake.requests[-1].events[-1]["Language"]),
                         (True, "de"))

    def test_values_are_checked_as_the_server_will_read_them(self) -> None:
        fake = self.collector()
        client = self.client(fake.url)
        session = {"Region": "eu", "SessionID": "s", "RemoteIP": "10.0.0.1", "SessionType": "t"}
        with self.assertRaises(InvalidEventError) as caught:
            client.track("session", {**session, "SessionID": 1.5, "ProfileID": float("nan"), "Message": object()})
        self.assertEqual(set(caught.exception.fields), {"SessionID", "ProfileID", "Message"})
        self.assertEqual(caught.exception.fields["SessionID"], "must be a string")
        purchase = {"ProfileID": 1, "Region": "eu", "Currency": "EUR", "PaymentProvider": "card", "Product": "gems"}
        with self.assertRaises(InvalidEventError) as money:
            client.track("purchase", {**purchase, "GrossAmount": Decimal("1.00001"), "NetAmount": 1.5})
        self.assertEqual(set(money.exception.fields), {"GrossAmount"})
        client.track("purchase", {**purchase, "GrossAmount": Decimal("12345678901234.5678"), "NetAmount": 8.395})
        self.assertTrue(client.flush(WAIT))
        sent = fake.requests[-1].events[-1]
        self.assertEqual((sent["GrossAmount"], sent["NetAmount"]), ("12345678901234.5678", 8.395))


class RulesTests(ClientTestCase):
    def test_the_collectors_rules_are_fetched_once_and_followed(self) -> None:
        fake = self.collector()
        widened = {k: e.with_string_limits({"Referrer": (100, False)}) for k, e in KINDS.items()}
        fake.document = openapi_document(widened, API_PREFIX, 1024 * 1024)
        client = self.client(fake.url + "/api/1.0/track/")
        ids = [client.track("user", {**USER, "Referrer": "r" * 100}) for _ in range(3)]  # the snapshot says 64
        with self.assertRaises(InvalidEventError) as caught:
            client.track("user", {**USER, "Referrer": "r" * 101})
        self.assertEqual(caught.exception.fields, {"Referrer": "must be at most 100 characters"})
        ids += [client.track("user", {**USER, "Referrer": "r" * 100}) for _ in range(3)]
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(fake.sent_ids(), ids)
        self.assertEqual(fake.gets, ["/api/1.0/openapi.json"])  # once

    def test_without_the_document_the_built_in_rules_are_used(self) -> None:
        fake = self.collector()  # GET answers 404
        client = self.client(fake.url)
        ok = client.track("user", {**USER, "Referrer": "r" * 64})
        with self.assertRaises(InvalidEventError):
            client.track("user", {**USER, "Referrer": "r" * 65})
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(fake.sent_ids(), [ok])
        self.assertEqual(fake.gets, ["/api/1.0/openapi.json"])  # not again at every refusal


class SendingTests(ClientTestCase):
    def test_503_is_retried_after_retry_after_with_the_same_message_ids(self) -> None:
        answers = iter([(503, {"Retry-After": "2"}, {"error": "the database cannot take events right now"})])
        fake = self.collector(lambda events: next(answers, None) or stored(events))
        client = self.client(fake.url)
        ids = [client.track("user", {**USER, "ProfileID": n}) for n in range(3)]
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(len(fake.requests), 2)
        self.assertEqual([e["MessageID"] for e in fake.requests[1].events], ids)
        self.assertEqual(fake.sent_ids(), ids + ids)
        self.assertGreaterEqual(fake.requests[1].at - fake.requests[0].at, 1.9)  # not the 0.5 s backoff

    def test_408_429_and_5xx_are_retried_other_4xx_are_not(self) -> None:
        statuses = iter([500, 429, 408, 502])
        fake = self.collector(lambda events: (s, {"Retry-After": "0"}, {}) if (s := next(statuses, 0)) else
                              stored(events))
        client = self.client(fake.url)
        ok = client.track("user", USER)
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(fake.sent_ids(), [ok] * 5)

        errors: list[tuple[dict[str, Any], dict[str, Any]]] = []
        gone = self.collector(lambda events: (404, {}, {"error": "not found"}))
        client = self.client(gone.url, on_error=lambda event, error: errors.append((event, error)))
        lost = client.track("user", USER)
        self.assertFalse(client.flush(WAIT))  # given up: not stored
        self.assertTrue(client.flush(WAIT))  # nothing given up since
        self.assertEqual(gone.sent_ids(), [lost])
        self.assertEqual([({k: v for k, v in e.items() if k != "Timestamp"}, err) for e, err in errors],
                         [({"type": "user", **USER, "MessageID": lost}, {"status": 404, "error": "not found"})])

    def test_a_400_removes_exactly_the_events_it_names_and_resends_the_rest(self) -> None:
        def answer(events: list[dict[str, Any]]) -> Answer:
            bad = {i: {"fields": {"Referrer": "no"}} for i, e in enumerate(events) if e.get("Referrer") == "bad"}
            return refuse(bad) if bad else stored(events)

        fake = self.collector(answer)
        errors: list[tuple[dict[str, Any], dict[str, Any]]] = []
        client = self.client(fake.url, batch_size=10, on_error=lambda event, error: errors.append((event, error)))
        ids = [client.track("user", {**USER, "Referrer": "bad" if n in (1, 3) else "ok"}) for n in range(5)]
        self.assertFalse(client.flush(WAIT))  # two of them were refused
        self.assertEqual([r.events for r in fake.requests][1], [fake.requests[0].events[i] for i in (0, 2, 4)])
        self.assertEqual(len(fake.requests), 2)
        self.assertEqual([(e["MessageID"], err) for e, err in errors],
                         [(ids[i], {"status": 400, "fields": {"Referrer": "no"}}) for i in (1, 3)])

    def test_flush_or_close_from_on_error_is_refused_not_a_deadlock(self) -> None:
        fake = self.collector(lambda events: (404, {}, {"error": "not found"}))
        raised: list[str] = []

        def on_error(event: dict[str, Any], error: dict[str, Any]) -> None:
            for call in (client.flush, client.close):
                try:
                    call()
                except RuntimeError as e:
                    raised.append(str(e))

        client = self.client(fake.url, on_error=on_error)
        client.track("user", USER)
        self.assertFalse(client.flush(WAIT))
        self.assertEqual(len(raised), 2)
        self.assertIn("cannot be called from on_error", raised[0])

    def test_a_batch_too_large_is_sent_in_smaller_ones(self) -> None:
        fake = self.collector(lambda events: (413, {}, {"error": "too many"}) if len(events) > 2 else stored(events))
        client = self.client(fake.url, batch_size=8)
        ids = [client.track("user", {**USER, "ProfileID": n}) for n in range(8)]
        self.assertTrue(client.flush(WAIT))
        stored_ids = [e["MessageID"] for r in fake.requests if len(r.events) <= 2 for e in r.events]
        self.assertEqual(stored_ids, ids)

    def test_the_url_may_be_the_base_the_api_prefix_or_the_batch_endpoint(self) -> None:
        fake = self.collector()
        for suffix in ("", "/", "/api/1.0/track", "/api/1.0/track/batch/", "/api/1.0/track/batch"):
            client = self.client(fake.url + suffix)
            client.track("user", USER)
            self.assertTrue(client.flush(WAIT))
            self.assertEqual(fake.requests[-1].path, "/api/1.0/track/batch/")

    def test_gzip_is_optional(self) -> None:
        fake = self.collector()
        for gzip in (True, False):
            client = self.client(fake.url, gzip=gzip)
            client.track("user", USER)
            self.assertTrue(client.flush(WAIT))
            self.assertEqual(fake.requests[-1].headers.get("Content-Encoding"), "gzip" if gzip else None)

    def test_flush_times_out_while_the_collector_is_down(self) -> None:
        dead = DeadPort()
        self.addCleanup(dead.release)
        client = self.client(dead.url)
        client.track("user", USER)
        self.assertFalse(client.flush(0.3))
        self.assertEqual(client.pending, 1)
        with self.assertLogs("track.client", "WARNING") as logs:
            client.close(0.1)
        self.assertIn("1 events lost: not acknowledged by the collector before close", logs.output[-1])


class DelayTests(TestCase):
    def test_retry_after_in_seconds_or_as_a_date(self) -> None:
        self.assertEqual(retry_after("7"), 7.0)
        later = email.utils.formatdate(time.time() + 100, usegmt=True)
        self.assertTrue(98 <= (retry_after(later) or 0) <= 100)
        self.assertEqual(retry_after(email.utils.formatdate(time.time() - 100, usegmt=True)), 0.0)
        self.assertEqual([retry_after(v) for v in (None, "", "soon", "-1")], [None] * 4)

    def test_backoff_grows_from_the_least_to_the_most_with_jitter(self) -> None:
        self.assertEqual(backoff(1), BACKOFF_MIN)
        delays = [backoff(4) for _ in range(200)]
        self.assertTrue(all(2.0 <= d <= 4.0 for d in delays))
        self.assertGreater(len(set(delays)), 100)  # jittered, not in step
        self.assertTrue(all(BACKOFF_MAX / 2 <= backoff(n) <= BACKOFF_MAX for n in (7, 20, 1000)))


class QueueTests(ClientTestCase):
    def test_a_full_queue_refuses_new_events_and_keeps_the_queued_ones(self) -> None:
        release = threading.Event()

        def answer(events: list[dict[str, Any]]) -> Answer:
            release.wait(WAIT)
            return stored(events)

        fake = self.collector(answer)
        client = self.client(fake.url, max_queue=3, batch_size=1)
        ids = [client.track("user", {**USER, "ProfileID": n}) for n in range(3)]
        with self.assertLogs("track.client", "WARNING") as logs, self.assertRaises(QueueFull):
            client.track("user", USER)
        self.assertIn("queue full", logs.output[0])
        release.set()
        self.assertTrue(client.flush(WAIT))
        self.assertEqual(sorted(fake.sent_ids()), sorted(ids))  # on several connections: in any order

    def test_queue_path_keeps_events_for_the_next_client(self) -> None:
        path = self.mktemp() + ".sqlite3"
        dead = DeadPort()
        self.addCleanup(dead.release)
        first = Client(dead.url, queue_path=path)
        ids = [first.track("user", {**USER, "ProfileID": n}) for n in range(3)]
        with self.assertLogs("track.client", "WARNING") as logs:
            first.close(timeout=0.2)
        self.assertIn(f"3 events stay in {path} for the next Client", logs.output[-1])
        fake = self.collector()
        second = self.client(fake.url, queue_path=path)
        self.assertEqual(second.pending, 3)
        self.assertTrue(second.flush(WAIT))
        self.assertEqual(fake.sent_ids(), ids)
        self.assertEqual(second.pending, 0)

    def test_at_exit_a_queue_path_client_leaves_what_it_cannot_send_in_the_file(self) -> None:
        path = self.mktemp() + ".sqlite3"
        dead = DeadPort()
        self.addCleanup(dead.release)
        code = ("import sys; from track.client import Client\n"
                "c = Client(sys.argv[1], queue_path=sys.argv[2], flush_interval=60)\n"
                "print(c.track('user', {'ProfileID': 5, 'Region': 'eu'}))\n")
        result = subprocess.run([sys.executable, "-c", code, dead.url, path], env=child_env(), capture_output=True,
                                text=True, timeout=WAIT, check=True)
        self.assertIn(f"1 events stay in {path} for the next Client", result.stderr)
        fake = self.collector()
        self.assertTrue(self.client(fake.url, queue_path=path).flush(WAIT))
        self.assertEqual(fake.sent_ids(), [result.stdout.strip()])

    def test_events_tracked_before_exit_are_sent_at_exit(self) -> None:
        fake = self.collector()
        code = ("import sys; from track.client import Client\n"
                "c = Client(sys.argv[1], flush_interval=60)\n"
                "print(c.track('user', {'ProfileID': 5, 'Region': 'eu'}))\n")
        out = subprocess.run([sys.executable, "-c", code, fake.url], env=child_env(), capture_output=True,
                             text=True, timeout=WAIT, check=True).stdout
        self.assertEqual(fake.sent_ids(), [out.strip()])


class VendoringTests(TestCase):
    def test_the_client_imports_without_twisted_or_klein(self) -> None:
        code = ("import sys\n"
                "for name in ('twisted', 'klein', 'treq', 'pymysql', 'prometheus_client', 'werkzeug', 'rich',\n"
                "             'track.fields', 'track.web', 'track.storage', 'track.run', 'track.spool'):\n"
                "    sys.modules[name] = None  # any import of them now fails\n"
                "from track.client import Client\n"
                "import track.client.importer\n"
                "c = Client('http://127.0.0.1:9')\n"
                "c.encode('user', {'ProfileID': 1, 'Region': 'eu', 'Referrer': 'r' * 64})\n"
                "c.close()\n"
                "print(' '.join(sorted(m for m, v in sys.modules.items() if m.split('.')[0] == 'track' and v)))\n")
        result = subprocess.run([sys.executable, "-c", code], env={**child_env(), "PYTHONWARNINGS": "ignore"},
                                capture_output=True, text=True, timeout=WAIT, cwd=os.getcwd())
        self.assertEqual(result.returncode, 0, result.stderr)
        modules = result.stdout.split()
        others = [m for m in modules if m != "track" and not m.startswith("track.client")]
        self.assertEqual(others, [])
