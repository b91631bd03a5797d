"""The spool on real files: order, exactness, restarts, torn tails, limits."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from typing import Any
from unittest import SkipTest

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from track.admin.health import ProcessHealth
from track.fields.kinds import KINDS, parse_event
from track.pipeline.replay import PROBE_MAX
from track.pipeline.writer import Writer
from track.spool import Spool, SpoolBroken, SpoolFull, decode, encode, parse_segment
from track.spool.lock import LOCK_FILE
from track.spool.records import SEGMENT_MAGIC, RecordError
from track.test.support import open_spool, spooled_rows
from track.types import Unavailable

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456)
PURCHASE = KINDS["purchase"]


def purchase(n: int) -> tuple[Any, ...]:
    return parse_event(PURCHASE, {
        "ProfileID": str(n), "Region": "eu", "Currency": "EUR", "GrossAmount": "123456789012345.6789",
        "NetAmount": "-0.0001", "PaymentProvider": "p\u00e9 \U0001f600", "Product": "x",
        "MessageID": f"m-{n}"}, "", NOW)


def segments(spool: Spool) -> list[str]:
    return sorted(os.path.join(spool.directory, n) for n in os.listdir(spool.directory)
                  if n.endswith(".spool"))


class RecordTests(SynchronousTestCase):
    def test_a_record_decodes_to_exactly_the_row(self) -> None:
        for kind, row in ((PURCHASE, purchase(1)),
                           (KINDS["item"], parse_event(KINDS["item"], {
                               "ProfileID": "1", "Region": "eu", "ItemName": "a", "ItemType": "b",
                               "IsUGC": "true"}, "10.0.0.1", NOW))):
            (payload,) = parse_segment(SEGMENT_MAGIC + encode(kind, row)).payloads
            self.assertEqual(decode(payload, KINDS), (kind, row))


    def test_a_malformed_record_is_a_record_error(self) -> None:
        """Whatever a checksummed payload holds, decode says RecordError (a
        dead letter), never another exception that would stop the replay."""
        good = {"Region": "eu", "SessionID": "s", "RemoteIP": "1.2.3.4", "SessionType": "t",
                "MessageID": "m", "Created": "2026-12-07T10:00:00"}
        malformed = [b"42", b'"text"', b"null", b"[1]", b'["session", 5]', b'{"type": "session", "columns": [1]}',
                     b'{"type": "session", "columns": 5}',
                     b'{"type": "purchase", "columns": {"GrossAmount": "abc"}}',
                     b'{"type": "session", "columns": {"Created": "yesterday"}}',
                     json.dumps({"type": "session", "columns": {**good, "Created": "noon"}}).encode()]
        for payload in malformed:
            with self.subTest(payload=payload), self.assertRaises(RecordError):
                decode(payload, KINDS)


class SpoolTests(TestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()

    def open(self, max_bytes: int = 10**6) -> Spool:
        spool: Spool = open_spool(self, self.dir, max_bytes)
        return spool

    @inlineCallbacks
    def test_appends_come_back_in_order_and_are_counted(self) -> Any:
        spool = self.open()
        yield spool.append([encode(PURCHASE, purchase(1)), encode(PURCHASE, purchase(2))])
        yield spool.append([encode(PURCHASE, purchase(3))])
        self.assertEqual(spool.events, 3)
        self.assertEqual(spool.bytes, sum(os.path.getsize(p) for p in segments(spool)))
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(spool))), [purchase(1), purchase(2), purchase(3)])

    @inlineCallbacks
    def test_a_restart_counts_what_is_there_and_writes_a_new_segment(self) -> Any:
        first = self.open()
        yield first.append([encode(PURCHASE, purchase(1))])
        first.close()
        second = self.open()
        self.assertEqual((second.events, second.bytes), (first.events, first.bytes))
        yield second.append([encode(PURCHASE, purchase(2))])
        self.assertEqual(len(segments(second)), 2)
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(second))), [purchase(1), purchase(2)])

    @inlineCallbacks
    def test_a_torn_tail_is_skipped_and_everything_before_it_kept(self) -> Any:
        spool = self.open()
        yield spool.append([encode(PURCHASE, purchase(n)) for n in range(5)])
        spool.close()
        (path,) = segments(spool)
        whole = encode(PURCHASE, purchase(99))
        good = len(SEGMENT_MAGIC) + sum(len(encode(PURCHASE, purchase(n))) for n in range(5))
        for torn in (whole[:5], whole[:-3], whole[:12] + b"x" * (len(whole) - 12)):
            with open(path, "rb+") as f:
                f.truncate(good)
                f.seek(0, 2)
                f.write(torn)
            with open(path, "rb") as f:
                segment = parse_segment(f.read())
            self.assertEqual((len(segment.payloads), segment.torn_at, segment.corrupt), (5, good, []))
            reopened = Spool(self.dir, 10**6, reactor)
            reopened.open()
            reopened.close()  # as a process that exits: the next start takes the lock
            self.assertEqual(reopened.events, 5)

    @inlineCallbacks
    def test_a_full_spool_refuses_and_keeps_its_bound(self) -> Any:
        record = encode(PURCHASE, purchase(1))
        spool = self.open(max_bytes=len(SEGMENT_MAGIC) + len(record) * 3)
        yield spool.append([record, record])
        yield self.assertFailure(spool.append([record, record]), SpoolFull)
        self.assertEqual(spool.events, 2)
        yield spool.append([record])
        yield self.assertFailure(spool.append([record]), SpoolFull)
        self.assertLessEqual(spool.bytes, spool.max_bytes)

    @inlineCallbacks
    def test_removing_a_replayed_segment_frees_its_space(self) -> Any:
        spool = self.open()
        yield spool.append([encode(PURCHASE, purchase(1))])
        (path,) = yield spool.sealed()
        yield spool.remove(path)
        self.assertEqual((spool.events, spool.bytes, os.listdir(spool.directory)), (0, 0, [LOCK_FILE]))


    @inlineCallbacks
    def test_opening_reads_the_counts_of_sealed_segments_not_their_records(self) -> Any:
        first = self.open()
        yield first.append([encode(PURCHASE, purchase(n)) for n in range(3)])
        first.close()
        (path,) = segments(first)
        with open(path, "r+b") as f:  # same size, records unreadable: only a scan would notice
            f.seek(len(SEGMENT_MAGIC))
            f.write(b"\0" * (os.path.getsize(path) - len(SEGMENT_MAGIC)))
        second = self.open()
        self.assertEqual(second.events, 3)
        second.close()
        os.unlink(path[: -len(".spool")] + ".count")  # unsealed, as after a crash: scanned
        self.assertEqual(self.open().events, 0)


class ProgressTests(TestCase):
    def test_records_an_earlier_replay_got_through_are_not_counted_again(self) -> Any:
        spool: Spool = open_spool(self, self.mktemp())
        d = spool.append([encode(PURCHASE, purchase(n)) for n in range(3)])
        d.addCallback(lambda _: spool.sealed())
        d.addCallback(lambda paths: spool.mark_replayed(paths[0], 1))
        d.addCallback(lambda _: spool.close())

        def reopened(_: Any) -> None:
            again = Spool(spool.directory, 10**6, reactor)
            again.open()
            self.assertEqual(again.events, 2)

        return d.addCallback(reopened)


class FormatOneTests(SynchronousTestCase):
    """Segments written by the previous release (no header, no marks)."""

    def setUp(self) -> None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(here, "fixtures", "spool-v1", "000000000001.spool")
        with open(path, "rb") as f:
            self.data = f.read()

    def test_every_record_reads_as_a_row_of_todays_tables(self) -> None:
        segment = parse_segment(self.data)
        rows = [decode(p, KINDS) for p in segment.payloads]
        self.assertEqual([(e.name, row[e.message_id_index]) for e, row in rows], [
            ("session", "v1-session-1"), ("session", "v1-session-2"), ("user", "v1-user-1"),
            ("item", "v1-item-1"), ("item", "v1-item-2"), ("purchase", "v1-purchase-1")])
        self.assertEqual((segment.corrupt, segment.torn_at), ([], None))

    def test_a_damaged_record_is_skipped_and_the_ones_after_it_found_again(self) -> None:
        first = parse_segment(self.data).payloads
        at = 8 + len(first[0]) + 8 + 20  # inside the second record's payload
        damaged = self.data[:at] + bytes([self.data[at] ^ 0x20]) + self.data[at + 1:]
        segment = parse_segment(damaged)
        self.assertEqual(segment.payloads, first[:1] + first[2:])
        self.assertEqual([offset for offset, _ in segment.corrupt], [8 + len(first[0])])


class FullDiskTests(TestCase):
    """The spool on a real, tiny filesystem that fills up (needs root)."""

    def setUp(self) -> None:
        if os.geteuid() != 0:
            raise SkipTest("REQUIRED-SKIPPED: mounting a tmpfs needs root")
        self.mount = os.path.abspath(self.mktemp())
        os.makedirs(self.mount)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", self.mount], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.mount], check=True)
        self.spool: Spool = open_spool(self, os.path.join(self.mount, "spool"), 10**9)

    @inlineCallbacks
    def wait_writable(self) -> Any:
        for _ in range(200):  # the spool checks again after 0.5 s, then 1 s
            if self.spool.writable:
                return
            yield deferLater(reactor, 0.05, lambda: None)
        self.fail("the spool did not become writable again")

    @inlineCallbacks
    def test_a_full_disk_refuses_appends_then_recovers_without_losing_a_record(self) -> Any:
        acknowledged = []
        n = 0
        while True:  # bounded by the filesystem's 128 KiB
            batch = [encode(PURCHASE, purchase(n + i)) for i in range(20)]
            try:
                yield self.spool.append(batch)
            except SpoolBroken:
                break
            acknowledged += [purchase(n + i) for i in range(20)]
            n += 20
        self.assertFalse(self.spool.writable)
        self.assertIn("No space left on device", self.spool.error)
        self.assertGreater(len(acknowledged), 100)
        # What was acknowledged is whole on disk; the failed append left no bytes behind.
        (path,) = segments(self.spool)
        with open(path, "rb") as f:
            segment = parse_segment(f.read())
        self.assertEqual((segment.torn_at, segment.corrupt), (None, []))
        self.assertEqual([decode(p, KINDS)[1] for p in segment.payloads], acknowledged)
        self.assertEqual(self.spool.events, len(acknowledged))
        # Space comes back: the spool notices by itself and appends to a new segment.
        (path,) = yield self.spool.sealed()
        yield self.spool.remove(path)
        yield self.wait_writable()
        yield self.spool.append([encode(PURCHASE, purchase(10**6))])
        self.assertEqual((yield Deferred.fromCoroutine(spooled_rows(self.spool))), [purchase(10**6)])
        self.flushLoggedErrors()



class DownStore:
    """A database that does not answer, counting how often it was asked."""

    def __init__(self) -> None:
        self.pings = 0

    def insert(self, event: Any, rows: Any) -> Deferred[Any]:
        return fail(Unavailable("connection refused"))

    def insert_atomic(self, groups: Any) -> Deferred[Any]:
        return fail(Unavailable("connection refused"))

    def ping(self) -> Deferred[None]:
        self.pings += 1
        return fail(Unavailable("connection refused"))

    def hosts_health(self) -> None:
        return None  # a store with no hosts to name


class ReadOnlyStore(DownStore):
    """Answers the probe, refuses every write until `writable`."""

    writable = False

    def insert(self, event: Any, rows: Any) -> Deferred[Any]:
        return succeed(None) if self.writable else fail(Unavailable("1290 read-only"))

    def ping(self) -> Deferred[None]:
        self.pings += 1
        return succeed(None)

    def hosts_health(self) -> None:
        return None  # a store with no hosts to name


class ProbeTests(SynchronousTestCase):
    def test_without_a_spool_an_outage_is_503_and_probing_backs_off(self) -> None:
        clock, store = Clock(), DownStore()
        writer = Writer(store, None, clock, dict(KINDS))
        self.failureResultOf(writer.insert(PURCHASE, [purchase(1)]), Unavailable)
        self.assertEqual((writer.up, writer.ready()), (False, False))
        gaps = []
        for _ in range(8):
            before, pings = clock.seconds(), store.pings
            while store.pings == pings:
                clock.advance(0.25)
            gaps.append(clock.seconds() - before)
        self.assertEqual(gaps, [0.5, 1.0, 2.0, 4.0, 8.0, PROBE_MAX, PROBE_MAX, PROBE_MAX])
        writer.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_a_database_that_answers_but_takes_no_writes_is_probed_with_growing_gaps(self) -> None:
        # A read-only server or a node leaving its cluster: the probe may
        # succeed, but writes fail.  Each failed attempt must not reset the
        # backoff, or the state flaps (and logs) every 0.5 s.
        clock, store = Clock(), ReadOnlyStore()
        writer = Writer(store, None, clock, dict(KINDS))
        self.failureResultOf(writer.insert(PURCHASE, [purchase(1)]), Unavailable)
        gaps = []
        for _ in range(6):
            before, pings = clock.seconds(), store.pings
            while store.pings == pings:
                clock.advance(0.25)
            gaps.append(clock.seconds() - before)
            self.assertTrue(writer.up)  # declared back by the probe ...
            self.failureResultOf(writer.insert(PURCHASE, [purchase(1)]), Unavailable)  # ... but writes fail
            self.assertFalse(writer.up)
        self.assertEqual(gaps, [0.5, 1.0, 2.0, 4.0, 8.0, PROBE_MAX])
        store.writable = True
        while store.pings < 7:
            clock.advance(0.25)
        self.successResultOf(writer.insert(PURCHASE, [purchase(1)]))
        store.writable = False
        self.failureResultOf(writer.insert(PURCHASE, [purchase(1)]), Unavailable)
        before = clock.seconds()
        while store.pings < 8:
            clock.advance(0.25)
        self.assertEqual(clock.seconds() - before, 0.5, "a write got through: the next outage starts afresh")
        writer.stop()

    def test_health_reports_the_database_and_the_spool(self) -> None:
        writer = Writer(DownStore(), None, Clock(), dict(KINDS))
        self.assertEqual(ProcessHealth(writer).health(), {
            "status": "ok", "database": "up",
            "spool": {"events": 0, "bytes": 0, "writable": False, "error": "turned off"},
            "dead_letter": {"events": 0, "corrupt_bytes": 0}})
        self.assertTrue(writer.ready())
