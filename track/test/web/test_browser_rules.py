"""track.js checks an event by the rules the collector publishes (its
OpenAPI document), in a real headless Chromium: over thousands of events,
every one it refuses the collector refuses too (it is never stricter), and
it catches what the document says the collector refuses."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.static import Data

from track.events.subset import read_kinds
from track.fields.compile import compile_kinds
from track.fields.eventtime import EventTime
from track.fields.kinds import KINDS, InvalidEvent, Kind
from track.test.browser import Chromium
from track.test.web.test_browser_tracker import page_site, serve_pages
from track.web.answers import API_PREFIX
from track.web.bodies.body import parse_json
from track.web.openapi import openapi_document

_NOW_MS = int(time.time() * 1000)
_NOW_TEXT = datetime.fromtimestamp(_NOW_MS / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
# Values of every JSON type, at and around the limits of the collector's
# field types: each replaces one field of a valid event.
POOL: list[Any] = [
    0, 1, -1, 7, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53, 1.5, -0.5, 12.3456, 12.34567, 1e15, 1e-7, 9.99,
    "0", "1", "42", "0042", "-7", "+7", " 7", "1.0", "1e3", "12.3456", "12.34567", "-0.0001", "1234567890123456",
    "", " ", "eu", "EU", "e", "e1", "abcdefghijklmnop", "abcdefghijklmnopq", "x" * 3, "x" * 4, "x" * 32, "x" * 33,
    "x" * 45, "x" * 46, "x" * 64, "x" * 65, "x" * 300, "\U0001F600" * 3, "\U0001F600" * 45, "\U0001F600" * 46,
    "\u00e9" * 16, "\u00e9" * 46, "\u0661\u0662", "a\nb", "ab\n",
    True, False, "T", "t", "true", "TRUE", "yes", "no", "F",
    None, [], {}, [1], {"a": 1},
    "ok-id.1:2_3", "bad id", "x/y", "warrior", "mage", "bard", "Mage", "ABC-123", "abc-123", "ABC-1234",
    "ABC-\u0661\u0662\u0663", "ab\r", "ab\u2028", "\u00e9\u00e9", 100000, 100000.01, 99999.99, 0.015, "0.01",
    _NOW_MS, _NOW_MS * 1000, -5, str(_NOW_MS), _NOW_TEXT, _NOW_TEXT.replace("Z", "+01:00"), "2026-02-30T00:00:00Z",
    "yesterday",
]
# A kind of an --events file with every rule of the subset (and rules
# JavaScript reads otherwise than Python: \d, `.`), beside the original four.
DECLARED = {"kinds": {"checkout_step": {"x-track-remote-ip": True, "schema": {
    "type": "object",
    "required": ["Step", "At"],
    "properties": {
        "Step": {"type": "integer", "minimum": 1, "maximum": 12},
        "Order": {"type": "integer", "minimum": 0, "maximum": 2**53 + 1},
        "Sku": {"type": "string", "maxLength": 16, "pattern": "^[A-Z]{3}-\\d{3}$"},
        "Coupon": {"type": "string", "pattern": "^.{2,6}$"},
        "Class": {"type": "string", "enum": ["warrior", "mage", "rogue"]},
        "Total": {"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 100000},
        "At": {"type": "string", "format": "date-time"},
        "Gift": {"type": "boolean", "default": False},
        "Note": {"type": "string", "maxLength": 8, "x-track-message": "must be a short note"},
        "description": {"type": "string", "maxLength": 5},
    },
}}}}
# Calls back with the kinds track.js learnt and, for each [kind, fields],
# whether track() queued it and the event as it would send it.
VERDICTS = """
const [cases, done] = arguments;
let refused = null;
console.warn = (message, event) => { refused = event; };  // the event refused (no output: thousands)
const t = Track.init({url: location.origin, flushInterval: 600000, batchSize: 1e9, maxQueue: 1e9});
t.kinds().then((kinds) => {
  const verdicts = cases.map(([kind, fields]) => {
    const queued = t.track(kind, fields) !== null;
    const event = queued ? t.events.pop() : refused;  // nothing is sent: only the verdicts matter
    return [queued, JSON.stringify(event)];
  });
  done({kinds, verdicts});
}, (e) => done({error: String(e)}));
"""


def rules_site(document: Mapping[str, Any]) -> Any:
    """The shop's pages (with track.js) and, on the same origin, an OpenAPI document."""
    site = page_site()
    api = Resource()
    version = Resource()
    version.putChild(b"openapi.json", Data(json.dumps(document).encode(), "application/json"))
    api.putChild(b"1.0", version)
    site.resource.putChild(b"api", api)
    return site


def collector_refusal(kinds: Mapping[str, Kind], sent: str) -> dict[str, str] | None:
    """What the collector's batch route says of one event as track.js sends it."""
    item = parse_json(sent.encode())
    name = item.pop("type")
    kind = kinds.get(name) if type(name) is str else None
    if kind is None:
        return {"type": "not served"}
    try:
        EventTime().parse(kind, item, "127.0.0.1", datetime.now(UTC).replace(tzinfo=None), None)
    except InvalidEvent as e:
        return e.fields
    return None


def valid_event(kind: Kind) -> dict[str, Any]:
    """An event of `kind` the collector takes: for each field, the first
    value of POOL it takes (found by asking its validator)."""
    event: dict[str, Any] = {}
    for field in kind.fields:
        for value in POOL:
            if value in ("", None):
                continue
            try:
                EventTime().parse(kind, {**event, field.name: value}, "127.0.0.1", datetime.now(), None)
            except InvalidEvent as e:
                if field.name in e.fields:
                    continue
            event[field.name] = value
            break
    return event


def cases(kinds: Mapping[str, Kind], seed: int = 22) -> Iterator[tuple[str, dict[str, Any]]]:
    """Valid events with one field changed to each value of POOL (or
    left out, or unknown), a few changed at once, and unknown kinds."""
    rng = random.Random(seed)
    for name, kind in kinds.items():
        base = valid_event(kind)
        yield name, base
        names = [f.name for f in kind.fields] + ["Timestamp"]
        for field in names:
            yield name, {k: v for k, v in base.items() if k != field}
            for value in POOL:
                yield name, {**base, field: value}
        yield name, {**base, "Bogus": 1}
        for _ in range(300):
            yield name, {**base, **{f: rng.choice(POOL) for f in rng.sample(names, rng.randint(2, 4))}}
    yield "level_up", {"Level": 3}
    yield "Session", {}


class TrackerRulesTests(TestCase):
    timeout = 120

    async def verdicts(self, kinds: Mapping[str, Kind]) -> tuple[list[str], list[tuple[bool, str]]]:
        document = openapi_document(kinds, API_PREFIX, 65536)
        origin = serve_pages(self, rules_site(document))
        browser = await Chromium.start(self)
        await browser.get(origin + "/shop.html")
        result = await browser.async_script(VERDICTS, list(cases(kinds)), timeout=90)
        self.assertNotIn("error", result)
        return result["kinds"], [tuple(v) for v in result["verdicts"]]

    async def test_never_stricter_than_the_collector_and_catches_what_it_refuses(self) -> None:
        await self.compare(KINDS)

    async def test_the_same_for_a_kind_of_an_events_file(self) -> None:
        declared, _ = read_kinds(DECLARED, "events.json")
        await self.compare({**KINDS, **compile_kinds(declared)})

    async def compare(self, served: Mapping[str, Kind]) -> None:
        kinds, verdicts = await self.verdicts(served)
        self.assertEqual(kinds, list(served))
        stricter, missed, refused = [], [], 0
        for queued, sent in verdicts:
            problems = collector_refusal(served, sent)
            refused += problems is not None
            if not queued and problems is None:
                stricter.append(sent)
            if queued and problems is not None:
                missed.append((sent, problems))
        self.assertGreater(refused, 1000)  # the corpus does try the rules
        self.assertEqual(stricter, [])
        # What track.js lets through for the collector to refuse is only what
        # its document does not say, or says for Python's regex.
        unsaid = [(sent, problems) for sent, problems in missed
                  if any(not left_to_the_collector(served, sent, name) for name in problems)]
        self.assertEqual(unsaid, [])


def left_to_the_collector(served: Mapping[str, Kind], sent: str, name: str) -> bool:
    """Whether track.js leaves a refusal of field `name` of `sent` to the
    collector: an event's age; the decimal places of a number JavaScript
    writes with an exponent (1e-7); a pattern Python reads otherwise than
    JavaScript (\\d, `.`) on text other than printable ASCII; a number given
    as text outside its bounds (the document's text form says only digits)."""
    event = json.loads(sent)
    value = event.get(name)
    field = next((f for f in served[event["type"]].fields if f.name == name), None)
    if name == "Timestamp" or (isinstance(value, (int, float)) and "e-" in json.dumps(value)):
        return True
    if isinstance(value, str) and field is not None:
        if field.type == "pattern" and not (value.isascii() and value.isprintable()):
            return any(part in (field.pattern or "") for part in ("\\d", "."))
        return field.type == "money" and (field.low is not None or field.high is not None)
    return False
