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
    "ok-id.1:2_3", "bad id", "x/y",
    _NOW_MS, _NOW_MS * 1000, -5, str(_NOW_MS), _NOW_TEXT, _NOW_TEXT.replace("Z", "+01:00"), "2026-02-30T00:00:00Z",
    "yesterday",
]
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
        kinds, verdicts = await self.verdicts(KINDS)
        self.assertEqual(kinds, list(KINDS))
        stricter, missed, refused = [], [], 0
        for queued, sent in verdicts:
            problems = collector_refusal(KINDS, sent)
            refused += problems is not None
            if not queued and problems is None:
                stricter.append(sent)
            if queued and problems is not None:
                missed.append((sent, problems))
        self.assertGreater(refused, 1000)  # the corpus does try the rules
        self.assertEqual(stricter, [])
        # What track.js lets through for the collector to refuse: only what
        # its document does not say (an event's age, a JSON number the
        # collector reads as text: 1e-7).
        unsaid = [m for m in missed if set(m[1]) - {"Timestamp"} and "e-7" not in m[0]]
        self.assertEqual(unsaid, [])
