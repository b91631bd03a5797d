"""Event time in memory: Timestamp and SentAt turned into the row's Created,
with a Clock for the receive time, so every value is exact."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from track.fields.eventtime import EventTime, parse_time
from track.fields.kinds import KINDS
from track.fields.values import Invalid
from track.pipeline.batcher import Batcher
from track.spool import decode, encode, parse_segment
from track.spool.records import SEGMENT_MAGIC
from track.test.web.test_app import FORM, JSON, URL, Database, HeaderDict, stub_treq
from track.web.app import TrackApp

NOW = datetime(2023, 11, 14, 22, 13, 20)  # the Clock's 1_700_000_000
HOUR_AGO = NOW - timedelta(hours=1)
USER = "ProfileID=7&Region=eu"


class ParseTimeTests(SynchronousTestCase):
    def test_rfc3339_and_epoch_milliseconds(self) -> None:
        ms = 1_700_000_000_123
        self.assertEqual(parse_time(ms), ms * 1000)
        self.assertEqual(parse_time(str(ms)), ms * 1000)
        self.assertEqual(parse_time("2023-11-14T22:13:20.123Z"), ms * 1000)
        self.assertEqual(parse_time("2023-11-14t23:13:20.123456789+01:00"), ms * 1000 + 456)
        self.assertEqual(parse_time("2023-11-14T21:43:20.123-00:30"), ms * 1000)

    def test_what_is_refused(self) -> None:
        values: tuple[object, ...] = (
            "2023-11-14T22:13:20", "2023-11-14", "2023-02-30T00:00:00Z", "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:60Z", "20231114T221320Z", "2023-11-14 22:13:20Z", "-1", "1.5", "1" * 17,
            "\uff11", -1, 10**16, True, 1.5, None, [], "2023-11-14T22:13:20.Z")
        for value in values:
            with self.subTest(value=value):
                self.assertRaises(Invalid, parse_time, value)


class RememberedCreatedTests(SynchronousTestCase):
    """EventTime remembers the last Created it made from an epoch-ms
    Timestamp; each answer is still the one a fresh EventTime gives."""

    def answer(self, event_time: EventTime, stamp: object, sent_at: int | None, now: datetime) -> object:
        try:
            return event_time.created(stamp, sent_at, now)
        except Invalid as e:
            return str(e)

    def test_each_answer_is_what_a_fresh_one_gives(self) -> None:
        remembering = EventTime(max_clock_skew=1, max_event_age=3600)
        ms = 1_700_000_000_000
        now, later = NOW, NOW + timedelta(seconds=1)
        cases: list[tuple[object, int | None, datetime]] = []
        stamps: tuple[object, ...] = (ms, ms, ms + 1, True, ms, str(ms), ms, 1, True, 1, ms + 10**9, ms + 10**9)
        for stamp in stamps:
            for when in (now, later, now):
                for sent_at in (None, None, ms * 1000, (ms + 2) * 1000, None):
                    cases += [(stamp, sent_at, when), (stamp, sent_at, when)]
        for stamp, sent_at, when in cases:
            with self.subTest(stamp=stamp, sent_at=sent_at, now=when):
                self.assertEqual(self.answer(remembering, stamp, sent_at, when),
                                 self.answer(EventTime(max_clock_skew=1, max_event_age=3600), stamp, sent_at, when))

    def test_a_bool_is_never_taken_for_the_int_before_it(self) -> None:
        event_time = EventTime(max_event_age=10**12)
        self.assertEqual(event_time.created(1, None, NOW), datetime(1970, 1, 1, 0, 0, 0, 1000))
        self.assertRaises(Invalid, event_time.created, True, None, NOW)


class EventTimeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database()
        self.app(EventTime())

    def app(self, event_time: EventTime) -> None:
        batcher = Batcher(self.db.insert, self.clock, flush_interval=0, insert_together=self.atomic_insert)
        self.treq = stub_treq(TrackApp(batcher, self.clock, event_time=event_time).resource())

    def atomic_insert(self, work: Sequence[tuple[Any, Sequence[Any]]]) -> Any:
        for event, rows in work:
            self.db.insert(event, rows)
        return succeed([])

    def post(self, path: str, body: str, headers: HeaderDict | None = FORM) -> tuple[int, Any]:
        d = self.treq.post(f"{URL}/{path}", data=body.encode(), headers=headers)
        self.treq.flush()
        self.clock.advance(0)  # the batcher's next turn: the receive time stays NOW
        self.treq.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        return response.code, (json.loads(content) if content else None)

    def created(self, table: str = "UserEvent") -> list[datetime]:
        return [row[-1] for row in self.db.rows.get(table, [])]

    def test_a_timestamp_in_a_form_and_in_json_is_the_rows_created(self) -> None:
        ms = int((HOUR_AGO - datetime(1970, 1, 1)).total_seconds() * 1000) + 250
        self.assertEqual(self.post("user/", f"{USER}&Timestamp=2023-11-14T21:13:20Z"), (201, None))
        self.assertEqual(self.post("user/", f"{USER}&Timestamp={ms}"), (201, None))
        body = {"ProfileID": 7, "Region": "eu", "Timestamp": "2023-11-14T22:13:20+01:00"}
        self.assertEqual(self.post("user/", json.dumps(body), JSON), (201, None))
        body["Timestamp"] = ms
        self.assertEqual(self.post("user/", json.dumps(body), JSON), (201, None))
        self.assertEqual(self.created(), [HOUR_AGO, HOUR_AGO + timedelta(milliseconds=250), HOUR_AGO,
                                          HOUR_AGO + timedelta(milliseconds=250)])

    def test_sent_at_corrects_a_client_clock_an_hour_behind(self) -> None:
        """The event happened 30 s before it was sent, by a clock 1 h slow."""
        slow = HOUR_AGO
        sent_ms = int((slow - datetime(1970, 1, 1)).total_seconds()) * 1000
        headers: HeaderDict = {**FORM, "Track-Sent-At": str(sent_ms)}
        stamp = (slow - timedelta(seconds=30)).isoformat() + "Z"
        self.assertEqual(self.post("user/", f"{USER}&Timestamp={stamp}", headers), (201, None))
        self.assertEqual(self.created(), [NOW - timedelta(seconds=30)])

    def test_a_batch_with_sent_at_in_its_body_or_header(self) -> None:
        events = [{"type": "user", "ProfileID": 1, "Region": "eu", "Timestamp": "2023-11-14T21:12:50Z"},
                  {"type": "user", "ProfileID": 2, "Region": "eu"}]
        code, body = self.post("batch/", json.dumps({"SentAt": "2023-11-14T21:13:20Z", "events": events}), JSON)
        self.assertEqual((code, body["stored"]), (201, 2))
        self.assertEqual(self.created(), [NOW - timedelta(seconds=30), NOW])
        ndjson = json.dumps(events[0]) + "\n"
        headers: HeaderDict = {"Content-Type": "application/x-ndjson", "Track-Sent-At": "2023-11-14T21:13:10Z"}
        self.assertEqual(self.post("batch/", ndjson, headers)[0], 201)
        self.assertEqual(self.created()[2], NOW - timedelta(seconds=20))

    def test_too_far_in_the_future_or_the_past_is_a_400_naming_timestamp(self) -> None:
        self.app(EventTime(max_clock_skew=60, max_event_age=3600))
        for stamp, problem in (("2023-11-14T22:14:21Z", "in the future"), ("2023-11-14T21:13:19Z", "older than")):
            code, body = self.post("user/", f"{USER}&Timestamp={stamp}")
            self.assertEqual((code, body["error"], list(body["fields"])), (400, "invalid event", ["Timestamp"]))
            self.assertIn(problem, body["fields"]["Timestamp"])
        for stamp in ("2023-11-14T22:14:20Z", "2023-11-14T21:13:20Z"):  # at the bounds: taken
            self.assertEqual(self.post("user/", f"{USER}&Timestamp={stamp}")[0], 201)
        # With SentAt, what counts is the corrected time: a slow clock's old stamp is fine.
        headers: HeaderDict = {**FORM, "Track-Sent-At": "2023-11-13T00:00:00Z"}
        self.assertEqual(self.post("user/", f"{USER}&Timestamp=2023-11-12T23:59:00Z", headers)[0], 201)
        code, body = self.post("user/", f"{USER}&Timestamp=2023-11-13T00:02:00Z", headers)
        self.assertEqual((code, list(body["fields"])), (400, ["Timestamp"]))
        self.assertEqual(self.created(), [NOW + timedelta(seconds=60), NOW - timedelta(hours=1),
                                          NOW - timedelta(minutes=1)])

    def test_malformed_values_name_their_field_with_the_others(self) -> None:
        code, body = self.post("user/", "ProfileID=x&Region=eu&Timestamp=yesterday")
        self.assertEqual((code, sorted(body["fields"])), (400, ["ProfileID", "Timestamp"]))
        code, body = self.post("user/", f"{USER}&Timestamp=2023-11-14T22:13:20Z", {**FORM, "Track-Sent-At": "now"})
        self.assertEqual((code, list(body["fields"])), (400, ["SentAt"]))
        code, body = self.post("user/", json.dumps({"ProfileID": 7, "Region": "eu", "Timestamp": None}), JSON)
        self.assertEqual((code, body["fields"]), (400, {"Timestamp": "must not be null"}))
        events = [{"type": "user", "ProfileID": 1, "Region": "eu"},
                  {"type": "user", "ProfileID": 1, "Region": "eu", "Timestamp": "2020-01-01T00:00:00Z"}]
        code, body = self.post("batch/", json.dumps({"events": events}), JSON)
        self.assertEqual((code, body["events"]), (400, [{"index": 1, "fields": {
            "Timestamp": "is older than 2592000 seconds (--max-event-age)"}}]))
        code, body = self.post("batch/", json.dumps({"SentAt": "soon", "events": events[:1]}), JSON)
        self.assertEqual((code, list(body["fields"])), (400, ["SentAt"]))
        both = {**JSON, "Track-Sent-At": "2023-11-14T22:13:20Z"}
        code, body = self.post("batch/", json.dumps({"SentAt": "2023-11-14T22:13:20Z", "events": events[:1]}), both)
        self.assertEqual((code, list(body["fields"])), (400, ["SentAt"]))
        self.assertEqual(self.created(), [])

    def test_an_empty_form_timestamp_means_not_given(self) -> None:
        self.assertEqual(self.post("user/", f"{USER}&Timestamp="), (201, None))
        self.assertEqual(self.created(), [NOW])

    def test_a_spool_record_keeps_the_event_time_to_the_microsecond(self) -> None:
        """What an outage spools is what the replay inserts: Created included."""
        self.db.outcome = None
        headers: HeaderDict = {**FORM, "Track-Sent-At": "2023-11-14T21:13:20.5Z"}
        self.assertEqual(self.post("user/", f"{USER}&Timestamp=2023-11-14T21:13:10.123456Z", headers)[0], 201)
        (row,) = self.db.rows["UserEvent"]
        self.assertEqual(row[-1], NOW - timedelta(seconds=10, microseconds=376544))
        segment = parse_segment(SEGMENT_MAGIC + encode(KINDS["user"], row))
        self.assertEqual(decode(segment.payloads[0], KINDS), (KINDS["user"], row))
