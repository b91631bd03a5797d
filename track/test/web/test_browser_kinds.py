"""track.js and the kinds a collector serves, in a real headless Chromium on
a page of another origin, against the real service and MariaDB: it learns
them from the collector's OpenAPI document (`t.kinds()`), says at once when
the collector would refuse an event (which then never reaches it), and
sends a kind declared with `--events FILE` like any other, stored with its
exact values."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from typing import Any

import treq
from twisted.trial.unittest import TestCase

from track.fields.kinds import KINDS
from track.test.admin.test_page_browser import WAIT_FOR_TEXT
from track.test.browser import Chromium
from track.test.events.example import ISSUE_EXAMPLE
from track.test.support import MYSQL_SKIP, TABLES, admin_port, client_pool, execute, reset_mysql, serve
from track.test.web.test_browser_tracker import QUEUES, serve_pages

# The issue's example: a kind of the collector's --events file.
EVENTS_FILE = ISSUE_EXAMPLE
LEVEL_UP_COLUMNS = "PlayerID, Level, Class, Zone, Reward, Hardcore, MessageID"
# The site's queues in localStorage, once there is one (or after 10 s: none).
WAIT_FOR_QUEUES = """
const [url, done] = arguments;
const mark = "track:" + url + ":q:";
const until = Date.now() + 10000;
const look = () => {
  const queues = {};
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith(mark)) queues[key] = JSON.parse(localStorage.getItem(key));
  }
  if (Object.keys(queues).length || Date.now() > until) done(queues); else setTimeout(look, 100);
};
look();
"""

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


def events_file(case: TestCase) -> str:
    path: str = os.path.abspath(case.mktemp()) + ".json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(EVENTS_FILE, f)
    return path


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
        # The tab saves its queue once its own queue key is settled: wait for it (bounded).
        (queued,) = (await browser.async_script(WAIT_FOR_QUEUES, url)).values()
        self.assertEqual([e["MessageID"] for e in queued], [result["id"]])

    async def test_a_kind_of_the_events_file_is_learnt_checked_and_stored(self) -> None:
        url = self.collector(events=events_file(self))
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        good = [
            ("level_up", {"PlayerID": 7, "Level": 100, "Class": "mage", "Zone": "Z" * 64, "Reward": 12.3456,
                          "Hardcore": True, "MessageID": "lvl-1"}),
            ("level_up", {"PlayerID": "8", "Level": "1", "Reward": "0.0001", "Hardcore": "f", "MessageID": "lvl-2"}),
        ]
        bad = [
            ("level_up", {"PlayerID": 9, "Level": 101}),
            ("level_up", {"PlayerID": 9, "Level": 0}),
            ("level_up", {"PlayerID": 9, "Level": 5, "Class": "bard"}),
            ("level_up", {"PlayerID": 9, "Level": 5, "Zone": "Z" * 65}),
            ("level_up", {"PlayerID": 9, "Level": 5, "Reward": 1.23456}),
            ("level_up", {"PlayerID": 9, "Level": 5, "Mana": 3}),
            ("level_up", {"Level": 5}),
            ("level_down", {"PlayerID": 9}),
        ]
        result = await browser.async_script(LEARN_TRACK_FLUSH, url, good + bad)
        self.assertNotIn("error", result)
        self.assertEqual(result["kinds"], [*KINDS, "level_up"])
        self.assertEqual(result["ids"], ["lvl-1", "lvl-2"] + [None] * len(bad))
        self.assertIs(result["ok"], True)
        self.assertEqual(execute(self.dsn, f"SELECT {LEVEL_UP_COLUMNS} FROM LevelUpEvent ORDER BY MessageID"),
                         [(7, 100, "mage", "Z" * 64, Decimal("12.3456"), 1, "lvl-1"),
                          (8, 1, None, None, Decimal("0.0001"), 0, "lvl-2")])
        refusals = [w for w in result["warnings"] if "would refuse" in w]
        self.assertEqual(len(refusals), len(bad), result["warnings"])
        for field in ("Level", "Level", "Class", "Zone", "Reward", "Mana", "PlayerID", "type"):
            self.assertTrue(any(f'"{field}":' in w.split(" not queued")[0] for w in refusals), (field, refusals))
        self.assertEqual(await rejected_total(url, self), 0)

    async def test_the_live_page_counts_a_kind_of_the_events_file(self) -> None:
        url = self.collector(events=events_file(self), admin_http="tcp:0:interface=127.0.0.1")
        admin = f"http://127.0.0.1:{admin_port(self)}/"
        pool = client_pool(self)
        batch = {"events": [{"type": "level_up", "PlayerID": n, "Level": n, "MessageID": f"page-lvl-{n}"}
                            for n in (1, 2, 3)]}
        response = await treq.post(f"{url}/api/1.0/track/batch/", json=batch, pool=pool)
        self.assertEqual(response.code, 201, await response.text())
        response = await treq.post(f"{url}/api/1.0/track/batch/", json={"events": [{"type": "nonsense"}]}, pool=pool)
        self.assertEqual(response.code, 400, await response.text())
        browser = await Chromium.start(self)
        await browser.get(admin)
        seen = await browser.async_script(WAIT_FOR_TEXT, ["live", "level_up", "page-lvl-3"], 20000)
        self.assertEqual(seen["found"], ["live", "level_up", "page-lvl-3"])
        # Every kind served, in the service's order (the custom one after the
        # original four, at 0 until counted), then batch; its own count and graph.
        counts = await browser.script("""return Array.from(document.querySelectorAll('#kinds tbody tr')).map(
            (r) => Array.from(r.cells).map((c) => c.textContent));""")
        self.assertEqual(counts, [["session", "0", "0"], ["user", "0", "0"], ["item", "0", "0"],
                                  ["purchase", "0", "0"], ["level_up", "3", "0"], ["batch", "0", "1"],
                                  ["batch requests", "1", "1"]])
        # The graphs are drawn from the rates of a later poll than the counts: wait for them (bounded).
        graphs = await browser.async_script("""
            const done = arguments[0]; const until = Date.now() + 20000;
            const look = () => {
              const titles = Array.from(document.querySelectorAll('#rate-graphs svg > title')).map(t => t.textContent);
              if (titles.includes("level_up") || Date.now() > until) done(titles); else setTimeout(look, 100);
            };
            look();""")
        self.assertIn("level_up", graphs)
        # The kind filter offers it (in the same order) and the server answers it.
        options = await browser.script("return Array.from(document.getElementById('kind').options).map((o) => o.value)")
        self.assertEqual(options, ["", "session", "user", "item", "purchase", "level_up", "batch"])
        shown = await browser.async_script("""
            const done = arguments[0]; const select = document.getElementById('kind');
            select.value = 'level_up'; select.dispatchEvent(new Event('change'));
            setTimeout(() => done(Array.from(document.querySelectorAll('#events tr.event')).map(
                (e) => [e.dataset.kind, e.dataset.messageId])), 1500);""")
        self.assertEqual(shown, [["level_up", f"page-lvl-{n}"] for n in (3, 2, 1)])
        response = await treq.get(f"{admin}feed/events?kind=level_up&status=accepted", pool=pool)
        found = json.loads(await response.content())
        self.assertEqual([(e["message_id"], e["fields"]["PlayerID"], e["fields"]["Level"]) for e in found["accepted"]],
                         [(f"page-lvl-{n}", n, n) for n in (3, 2, 1)])
        errors = [e for e in await browser.console() if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [])
