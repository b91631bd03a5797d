"""track.js and the kinds a collector serves, in a real headless Chromium on
a page of another origin, against the real service and MariaDB: it learns
them from the collector's OpenAPI document (`t.kinds()`), says at once when
the collector would refuse an event (which then never reaches it), and
sends a kind declared with `--events FILE` like any other, stored with its
exact values."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import treq
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS
from track.test.browser import Chromium
from track.test.support import MYSQL_SKIP, TABLES, client_pool, execute, reset_mysql, serve
from track.test.web.test_browser_tracker import QUEUES, serve_pages

# Learns the kinds, then tracks each [kind, fields] of arguments[1] and
# flushes: calls back with the kinds, what each track() returned (its
# MessageID, or null when refused at once), flush()'s result and the warnings.
LEARN_TRACK_FLUSH = """
const [url, events, done] = arguments;
const warnings = [];
const warn = console.warn;
console.warn = (...args) => { warnings.push(args.map((a) => typeof a === "string" ? a : JSON.stringify(a)).join(" "));
                              warn.apply(console, args); };
const t = Track.init({url: url});
t.kinds().then((kinds) => {
  const ids = events.map(([kind, fields]) => t.track(kind, fields));
  return t.flush().then((ok) => done({kinds, ids, ok, warnings}));
}).catch((e) => done({error: String(e)}));
"""
GOOD = [
    ("user", {"ProfileID": 1, "Region": "eu", "Message": "\U0001F600" * 45}),  # 45 characters, 90 UTF-16 units
    ("item", {"ProfileID": "0042", "Region": "eu", "ItemName": "sword", "ItemType": "weapon", "IsUGC": "T",
              "PriceGold": "", "IsRented": 1}),
    ("purchase", {"ProfileID": 1, "Region": "eu", "Currency": "EUR", "GrossAmount": "9.9999", "NetAmount": 8.5,
                  "PaymentProvider": "card", "Product": "gems"}),
]
BAD = [
    ("level_up", {"PlayerID": 1, "Level": 3}),  # not served by this collector
    ("user", {"ProfileID": "forty-two", "Region": "eu"}),
    ("user", {"ProfileID": 1}),
    ("user", {"ProfileID": 1, "Region": "eu", "Coupon": "X"}),
    ("user", {"ProfileID": 1, "Region": "eu", "Message": "x" * 46}),
    ("purchase", {"ProfileID": 1, "Region": "eu", "Currency": "EUR", "GrossAmount": "9.99999", "NetAmount": 1,
                  "PaymentProvider": "card", "Product": "gems"}),
]


async def rejected_total(url: str, case: TestCase) -> float:
    """Events the collector refused, by its /metrics."""
    response = await treq.get(f"{url}/metrics", pool=client_pool(case))
    text = (await response.content()).decode()
    return sum(float(m.group(1)) for m in re.finditer(r"(?m)^track_events_rejected_total\{[^}]*\} ([0-9.e+]+)$", text))


class BrowserKindsTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        self.origin = serve_pages(self)

    def collector(self, *args: str, **options: Any) -> str:
        options.setdefault("cors_origin", [self.origin])
        port, _ = serve(self, self.dsn, *args, **options)
        return f"http://127.0.0.1:{port}"

    async def open_shop(self, browser: Chromium) -> None:
        await browser.get(self.origin + "/shop.html")
        self.assertEqual(await browser.script("return typeof Track"), "object")

    async def test_refused_at_once_what_the_collector_would_refuse(self) -> None:
        url = self.collector()
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script(LEARN_TRACK_FLUSH, url, GOOD + BAD)
        self.assertNotIn("error", result)
        # The kinds, read from the collector's OpenAPI document across origins.
        self.assertEqual(result["kinds"], list(KINDS))
        ids = result["ids"]
        self.assertEqual(ids[len(GOOD):], [None] * len(BAD))
        self.assertNotIn(None, ids[:len(GOOD)])
        self.assertIs(result["ok"], True)
        stored = sorted(m for t in TABLES for (m,) in execute(self.dsn, f"SELECT MessageID FROM {t}"))
        self.assertEqual(stored, sorted(ids[:len(GOOD)]))
        self.assertEqual(execute(self.dsn, "SELECT CHAR_LENGTH(Message) FROM UserEvent"), [(45,)])
        self.assertEqual(execute(self.dsn, "SELECT ProfileID, IsUGC, PriceGold, IsRented FROM ItemEvent"),
                         [(42, 1, None, 1)])
        self.assertEqual(execute(self.dsn, "SELECT GrossAmount, NetAmount FROM PurchaseEvent"),
                         [(Decimal("9.9999"), Decimal("8.5"))])
        # Each refusal said at once, naming the field; none reached the collector.
        refusals = [w for w in result["warnings"] if "would refuse" in w]
        self.assertEqual(len(refusals), len(BAD), result["warnings"])
        for why in ('"type":"must be one of session, user, item, purchase"', '"ProfileID":"must be an integer"',
                    '"Region":"is required"', '"Coupon":"unknown field"', '"Message":"must be at most 45 characters"',
                    '"GrossAmount":"must be a decimal number"'):
            self.assertEqual(len([w for w in refusals if why in w]), 1, (why, refusals))
        self.assertEqual(await rejected_total(url, self), 0)
        self.assertEqual(await browser.script(QUEUES, url), {})

    async def test_a_collector_whose_document_cannot_be_read_decides_as_before(self) -> None:
        # No --cors-origin: the browser hides the document (and every answer)
        # from this page, so track.js knows no kinds and queues every event.
        url = self.collector(cors_origin=[])
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script("""
            const [url, done] = arguments;
            const t = Track.init({url: url, flushInterval: 600000});
            t.kinds().then((kinds) => done({kinds, id: t.track("level_up", {Level: 3})}));
        """, url)
        self.assertIsNone(result["kinds"])
        self.assertIsNotNone(result["id"])
        (queued,) = (await browser.script(QUEUES, url)).values()
        self.assertEqual([e["MessageID"] for e in queued], [result["id"]])
