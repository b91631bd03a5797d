"""track.js in a real headless Chromium against the real service and
MariaDB, as issue 19 tried it: many windows of one site tracking at once
(one closed mid-stream), a 413 the site sends before routing, a collector
that says Retry-After: 1, a page offline for a while, and a page whose
collector has no --cors-origin."""

from __future__ import annotations

import re
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from track.test.browser import Chromium
from track.test.process import wait_until
from track.test.support import MYSQL_SKIP, TABLES, execute, reset_mysql, serve
from track.test.web.test_browser_tracker import QUEUES, TRACK_AND_FLUSH, serve_pages

WINDOWS = 4
PER_WINDOW = 1000
# Starts a tracker and, at the agreed moment (arguments[2], epoch ms), tracks
# arguments[3] events at 100 a second; window.done once all are tracked.
# arguments[4]: this window's beacons are lost (sendBeacon takes them and
# drops them), so its queue can only arrive through another window.
# arguments[5]: the page has no Web Locks API (older browsers).
STREAM = """
const [url, w, startAt, count, loseBeacon, noLocks] = arguments;
if (loseBeacon) navigator.sendBeacon = () => true;
if (noLocks) Object.defineProperty(navigator, "locks", {value: undefined});
window.t = Track.init({url: url});
window.ids = [];
window.done = false;
setTimeout(() => {
  const h = setInterval(() => {
    // The window to be closed loses its network for its last 20 events, so
    // they are surely still queued when it closes (on a fast machine it
    // would otherwise have sent everything): only another window can send them.
    if (loseBeacon && window.ids.length === count - 20) window.fetch = () => Promise.reject(new TypeError("offline"));
    window.ids.push(t.track("user", {ProfileID: w, Region: "eu", Message: "w" + w + " #" + window.ids.length}));
    if (window.ids.length >= count) { clearInterval(h); window.done = true; }
  }, 10);
}, Math.max(0, startAt - Date.now()));
"""
# Calls back once the stream is done: the ids tracked, and how many of them
# are still in this tab's queue (not yet seen stored).
WHEN_DONE = """
const [url, done] = arguments;
const check = () => {
  if (!window.done) return setTimeout(check, 20);
  const key = t.id ? "track:" + url + ":q:" + t.id : "track:" + url;  // track.js 1: one key for all tabs
  const queued = JSON.parse(localStorage.getItem(key) || "[]");
  done({ids: window.ids, queued: queued.length, locks: !!t.locks});
};
check();
"""
# Records every request the tracker makes: [status (0: no answer), events].
RECORD = """
const real = window.fetch.bind(window);
window.sent = [];
window.fetch = (url, init) => real(url, init).then(r => {
  window.sent.push([r.status, JSON.parse(init.body).events.length]); return r;
}, e => { window.sent.push([0, JSON.parse(init.body).events.length]); throw e; });
"""


class BrowserTabsTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 300

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        self.origin = serve_pages(self)

    def collector(self, *args: str, **options: Any) -> tuple[str, Any]:
        options.setdefault("cors_origin", [self.origin])
        port, site = serve(self, self.dsn, *args, **options)
        return f"http://127.0.0.1:{port}", site

    def message_ids(self) -> list[str]:
        """Every stored event's MessageID (a list: a duplicate would show)."""
        return sorted(m for t in TABLES for (m,) in execute(self.dsn, f"SELECT MessageID FROM {t}"))

    def stored(self) -> int:
        return sum(n for t in TABLES for (n,) in execute(self.dsn, f"SELECT COUNT(*) FROM {t}"))

    async def open_shop(self, browser: Chromium) -> None:
        await browser.get(self.origin + "/shop.html")
        self.assertEqual(await browser.script("return typeof Track"), "object")

    async def test_four_windows_one_closed_mid_stream_store_every_event_exactly_once(self) -> None:
        await self.windows_one_closed(WINDOWS, PER_WINDOW, locks=True)

    async def test_without_web_locks_a_closed_windows_queue_is_claimed_all_the_same(self) -> None:
        await self.windows_one_closed(2, 300, locks=False)

    async def windows_one_closed(self, windows: int, per_window: int, locks: bool) -> None:
        """`windows` windows of one origin track `per_window` events each
        at 100 a second, started together; the last is closed as soon as
        its last event is tracked, while the others still stream: its last
        20 events are unsent (its network cut), its beacon is lost, and only
        another window can send them.  Every event is stored exactly once."""
        url, _ = self.collector()
        browser = await Chromium.start(self)
        handles = []
        for w in range(windows):
            if w:
                await browser.run(lambda d: d.switch_to.new_window("window"))
            await self.open_shop(browser)
            handles.append(await browser.run(lambda d: d.current_window_handle))
        start_at = int(time.time() * 1000) + 1500
        for w, handle in enumerate(handles):
            await browser.run(lambda d, h=handle: d.switch_to.window(h))
            await browser.script(STREAM, url, w, start_at, per_window, w == windows - 1, not locks)

        def close_when_done(driver: Any) -> Any:
            driver.switch_to.window(handles[-1])
            driver.set_script_timeout(120)
            result = driver.execute_async_script(WHEN_DONE, url)
            driver.close()
            driver.switch_to.window(handles[0])
            return result

        closed = await browser.run(close_when_done)
        self.assertEqual(len(closed["ids"]), per_window)
        self.assertIs(closed["locks"], locks)
        self.assertGreater(closed["queued"], 0, "the closed window had sent everything: nothing left to claim")
        tracked = list(closed["ids"])
        for handle in handles[:-1]:
            await browser.run(lambda d, h=handle: d.switch_to.window(h))
            result = await browser.async_script(WHEN_DONE, url, timeout=120)
            self.assertEqual(len(result["ids"]), per_window)
            tracked += result["ids"]
            self.assertIs(await browser.async_script("t.flush().then(arguments[0])", timeout=120), True)
        self.assertEqual(len(set(tracked)), windows * per_window)
        await wait_until(lambda: self.stored() >= windows * per_window, "every window's events", 120)
        self.assertEqual(self.message_ids(), sorted(tracked))  # none lost, none twice
        # The closed window's queue was claimed and sent; no queue is left.
        await wait_until_async(lambda: browser.script(QUEUES, url), lambda q: q == {}, "every queue empty", 60)

    async def test_a_duplicated_tab_takes_a_new_id_and_a_reload_keeps_its_own(self) -> None:
        url, _ = self.collector()
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        ready = ("window.t = Track.init({url: arguments[0], flushInterval: 600000});"
                 "t.ready.then(() => arguments[1](t.id))")
        first = await browser.async_script(ready, url)
        # Events queued, then the page reloaded with its beacon lost: the
        # reloaded page keeps the tab's id and sends its queue.
        ids = await browser.script("navigator.sendBeacon = () => true;"
                                   "return [1, 2, 3].map(n => t.track('user', {ProfileID: n, Region: 'eu'}))")
        # A window opened by this one gets a copy of its sessionStorage (as a
        # duplicated tab does): the same tab id, while this page lives.
        opener = await browser.run(lambda d: d.current_window_handle)
        await browser.script("window.open(location.href)")
        await wait_until_async(lambda: browser.run(lambda d: len(d.window_handles)), lambda n: n == 2, "the window", 30)
        (other,) = [h for h in await browser.run(lambda d: d.window_handles) if h != opener]
        await browser.run(lambda d: d.switch_to.window(other))
        await wait_until_async(lambda: browser.script("return typeof Track"), lambda t: t == "object", "track.js", 30)
        copied = await browser.script("return sessionStorage.getItem(arguments[0])", f"track:{url}:tab")
        self.assertEqual(copied, first)
        second = await browser.async_script(ready, url)
        self.assertNotEqual(second, first)
        self.assertEqual(await browser.script("return sessionStorage.getItem(arguments[0])", f"track:{url}:tab"),
                         second)
        await browser.run(lambda d: d.switch_to.window(opener))
        await browser.run(lambda d: d.refresh())
        self.assertEqual(await browser.async_script(ready, url), first)
        self.assertIs(await browser.async_script("t.flush().then(arguments[0])", timeout=60), True)
        self.assertEqual(self.message_ids(), sorted(ids))

    async def test_an_early_413_halves_the_batch_and_every_event_is_stored(self) -> None:
        # 50 events are ~7 kB: over --max-batch-body, refused by the site
        # from the Content-Length, before any route runs.
        url, _ = self.collector(max_batch_body=4000)
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        await browser.script(RECORD)
        events = [("user", {"ProfileID": n, "Region": "eu", "Message": "x" * 40}) for n in range(100)]
        result = await browser.async_script(TRACK_AND_FLUSH, url, events, timeout=60)
        self.assertIs(result.get("ok"), True, result)
        self.assertEqual(self.message_ids(), sorted(result["ids"]))
        sent = await browser.script("return window.sent")
        self.assertEqual(sent[0], [413, 50], sent)
        self.assertLessEqual(sent[1][1], 25, sent)  # halved (and kept under the limit the 413 named)
        self.assertEqual([s for s, _ in sent[1:]], [201] * (len(sent) - 1), sent)

    async def test_retry_after_is_honoured_without_drift(self) -> None:
        # 20 events a second, at most 20 a batch: the tracker's first batch
        # (50) is a 413 naming 20, and then the rate limit answers 429 with
        # Retry-After: 1.  Ideally: 40 at once (the bucket's burst), then 20 a
        # second.  The old tracker took ~90 s (its backoff grew to 30 s, and
        # every second batch was another 413).
        count = 300
        url, _ = self.collector(rate_limit=20, max_batch=20)
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        await browser.script(RECORD)
        ideal = (count - 40) / 20
        await browser.script(
            "const [url, events] = arguments; window.t = Track.init({url: url});"
            "window.ids = events.map(([kind, fields]) => t.track(kind, fields));",
            url, [("user", {"ProfileID": n, "Region": "eu"}) for n in range(count)])
        # Generous: twice the ideal (the jitter adds up to a quarter), on a loaded machine.
        await wait_until(lambda: self.stored() >= count, f"{count} events within twice the ideal {ideal:g} s",
                         2 * ideal + 5)
        self.assertEqual(self.message_ids(), sorted(await browser.script("return window.ids")))
        sent = await browser.script("return window.sent")
        statuses = [s for s, _ in sent]
        self.assertEqual(statuses.count(413), 1, sent)  # never again past the size refused
        self.assertEqual(statuses.count(201), count // 20, sent)
        self.assertLessEqual(statuses.count(429), statuses.count(201) + 2, sent)  # no busy retries

    async def test_a_page_offline_for_a_while_keeps_its_events_time(self) -> None:
        listener: Any = reactor
        reserved = listener.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        port = reserved.getHost().port
        await reserved.stopListening()
        url = f"http://127.0.0.1:{port}"
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script(
            "const [url, done] = arguments; window.t = Track.init({url: url});"
            "const at = Date.now(); const ids = [1, 2, 3].map(n => t.track('user', {ProfileID: n, Region: 'eu'}));"
            "t.flush().then(ok => done({ok, ids, at}));", url)
        self.assertIs(result["ok"], False)  # offline: nothing stored
        offline = 4.0
        await deferLater(reactor, offline, lambda: None)  # the page stays offline a while
        self.collector(http=f"tcp:{port}:interface=127.0.0.1")
        self.assertIs(await browser.async_script("t.flush().then(arguments[0])", timeout=60), True)
        self.assertEqual(self.message_ids(), sorted(result["ids"]))
        # Created is when each event was tracked, not when it arrived.
        ages = execute(self.dsn, "SELECT TIMESTAMPDIFF(MICROSECOND, Created, NOW(6)) / 1e6 FROM UserEvent")
        since_tracked = time.time() - result["at"] / 1000
        for (age,) in ages:
            self.assertGreaterEqual(float(age), offline - 1, ages)
            self.assertLess(abs(float(age) - since_tracked), 1.5, (ages, since_tracked))

    async def test_a_page_whose_collector_has_no_cors_origin_is_told_once(self) -> None:
        url, site = self.collector(cors_origin=[])
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script(TRACK_AND_FLUSH, url, [("user", {"ProfileID": 1, "Region": "eu"})])
        self.assertIs(result.get("ok"), False, result)  # stored, but the browser hides the 201
        await wait_until(lambda: self.message_ids() == result["ids"], "the event stored", 30)
        warnings: list[str] = []

        async def told() -> list[str]:
            warnings.extend(e["message"] for e in await browser.console() if e["level"] == "WARNING")
            return [w for w in warnings if "--cors-origin " + self.origin in w]

        await wait_until_async(told, lambda w: len(w) >= 1, "the console warning", 30)

        def unconfigured() -> float:
            found = re.search(r"(?m)^track_cors_unconfigured_total ([0-9.]+)$", site.metrics.render().decode())
            return float(found.group(1)) if found else 0.0

        # The tracker goes on retrying (each try counted by the collector),
        # and says it once, not once per retry.
        await wait_until(lambda: unconfigured() >= 4, "more tries", 60)
        self.assertEqual(len(await told()), 1, warnings)


async def wait_until_async(read: Any, ok: Any, what: str, timeout: float) -> Any:
    """Await `read()` until `ok(value)`, for `timeout` seconds at most."""
    clock: Any = reactor
    deadline = clock.seconds() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        if clock.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}: {value!r}")
        await deferLater(clock, 0.1, lambda: None)
