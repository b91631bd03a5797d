"""The browser tracker (track.js) in a real headless Chromium, on a page of
another origin, against the real service and MariaDB: every event it
tracks is stored exactly once, whether the page flushes, is left at once,
or runs while the collector is down; a page on an origin --cors-origin does
not allow stores nothing."""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from track.test.browser import Chromium
from track.test.process import wait_until
from track.test.support import MYSQL_SKIP, TABLES, client_pool, execute, reset_mysql, serve

SCRIPT = resources.files("track.web").joinpath("static", "track.js").read_bytes()
EVENTS = [
    ("user", {"ProfileID": 1, "Region": "eu", "Language": "de-AT"}),
    ("item", {"ProfileID": 1, "Region": "eu", "ItemName": "sword", "ItemType": "weapon", "IsUGC": False,
              "IsRented": True, "PriceGold": 10}),
    ("purchase", {"ProfileID": 1, "Region": "eu", "Currency": "EUR", "GrossAmount": "9.99", "NetAmount": 8.5,
                  "PaymentProvider": "card", "Product": "gems"}),
    ("session", {"Region": "eu", "SessionID": "s-1", "RemoteIP": "198.51.100.1", "SessionType": "login"}),
]
# Tracks EVENTS (arguments[1]) with a tracker for the collector at arguments[0]
# and flushes; calls back with the MessageIDs and what flush() resolved to.
TRACK_AND_FLUSH = """
const [url, events, done] = arguments;
const t = Track.init({url: url});
const ids = events.map(([kind, fields]) => t.track(kind, fields));
t.flush().then(ok => done({ids, ok}), e => done({ids, error: String(e)}));
"""
# The queues the tabs of the page's origin keep for the collector at arguments[0]: {key: events}.
QUEUES = """
const mark = "track:" + arguments[0] + ":q:";
const queues = {};
for (const key of Object.keys(localStorage)) {
  if (key.startsWith(mark)) queues[key] = JSON.parse(localStorage.getItem(key));
}
return queues;
"""


def page_site() -> Site:
    """The shop's own site: a page that bundles its own copy of track.js,
    and a second page to leave the first for."""
    root = Resource()
    root.putChild(b"shop.html", Data(b'<!doctype html><title>shop</title><script src="/js/track.js"></script>',
                                     "text/html"))
    root.putChild(b"bye.html", Data(b"<!doctype html><title>bye</title>", "text/html"))
    js = Resource()
    js.putChild(b"track.js", Data(SCRIPT, "application/javascript"))
    root.putChild(b"js", js)
    return Site(root)


def serve_pages(case: TestCase, site: Site | None = None) -> str:
    """Serve the shop's pages (page_site) on a free local port for the
    test's length; their origin, as the browser sends it."""
    listener: Any = reactor
    port = listener.listenTCP(0, site or page_site(), interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}"


class ScriptedCollector(Resource):
    """A stand-in for the batch endpoint that answers from a script, so a
    test sees each request the tracker makes and can answer 503, 413 or 400
    on cue; then 201 for good."""

    isLeaf = True

    def __init__(self, answers: list[tuple[int, dict[str, str], dict[str, Any] | None]]) -> None:
        super().__init__()
        self.answers = answers
        self.batches: list[list[str]] = []  # the MessageIDs of each request, in order

    def render_POST(self, request: Any) -> bytes:
        events = json.loads(request.content.read())["events"]
        self.batches.append([e["MessageID"] for e in events])
        code, headers, body = self.answers.pop(0) if self.answers else (201, {}, {"stored": len(events)})
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name, value)
        request.setHeader("Content-Type", "application/json")
        return json.dumps(body).encode()


class BrowserTrackerTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 240

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        site = page_site()
        self.page_root = site.resource
        self.origin = serve_pages(self, site)

    def collector(self, *origins: str, **options: Any) -> str:
        port, _ = serve(self, self.dsn, cors_origin=list(origins or [self.origin]), **options)
        return f"http://127.0.0.1:{port}"

    def message_ids(self) -> list[str]:
        """Every stored event's MessageID (a list: a duplicate would show)."""
        return sorted(m for t in TABLES for (m,) in execute(self.dsn, f"SELECT MessageID FROM {t}"))

    async def open_shop(self, browser: Chromium) -> None:
        await browser.get(self.origin + "/shop.html")
        self.assertEqual(await browser.script("return typeof Track"), "object")

    async def test_a_page_of_another_origin_tracks_and_flushes(self) -> None:
        url = self.collector()
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        refused = ("user", {"ProfileID": "forty-two", "Region": "eu"})
        result = await browser.async_script(TRACK_AND_FLUSH, url, [*EVENTS, refused])
        self.assertIs(result.get("ok"), True, result)
        ids = result["ids"]
        self.assertEqual(self.message_ids(), sorted(ids[:-1]))
        self.assertEqual(execute(self.dsn, "SELECT ItemName, IsUGC, IsRented, PriceGold FROM ItemEvent"),
                         [("sword", 0, 1, 10)])
        self.assertEqual(execute(self.dsn, "SELECT Language FROM UserEvent"), [("de-AT",)])
        # The refused event was dropped, with a warning naming why.
        warnings = [e["message"] for e in await browser.console() if e["level"] == "WARNING"]
        self.assertTrue(any("refused an event" in w and "must be an integer" in w for w in warnings), warnings)
        self.assertEqual(await browser.script(QUEUES, url), {})
        # A value JSON cannot hold is refused by track() itself; the queue goes on.
        result = await browser.async_script("""
            const [url, done] = arguments;
            const t = Track.init({url: url});
            let refusal = null;
            try { t.track("user", {ProfileID: 10n, Region: "eu"}); } catch (e) { refusal = e.name + ": " + e.message; }
            const id = t.track("user", {ProfileID: 77, Region: "eu"});
            t.flush().then(ok => done({refusal, id, ok}), e => done({refusal, error: String(e)}));
        """, url)
        self.assertTrue(result["refusal"].startswith("TypeError: track(kind, fields): fields must be JSON"), result)
        self.assertIs(result.get("ok"), True, result)
        self.assertIn(result["id"], self.message_ids())
        # The collector serves the same script, for pages that load it from there.
        response = await treq.get(f"{url}/track.js", pool=client_pool(self))
        self.assertEqual(await response.content(), SCRIPT)

    async def test_what_a_page_sends_by_hand_from_an_allowed_origin_is_stored(self) -> None:
        url = self.collector()
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script("""
            const [url, done] = arguments;
            const u = url + "/api/1.0/track/user/";
            const sent = [navigator.sendBeacon(u, JSON.stringify({ProfileID: 11, Region: "eu"}))];
            const data = new FormData(); data.append("ProfileID", "12"); data.append("Region", "eu");
            sent.push(navigator.sendBeacon(u, data));
            // Credentialed, with a preflight: needs Access-Control-Allow-Credentials.
            fetch(u, {method: "POST", credentials: "include", headers: {"Content-Type": "application/json"},
                      body: JSON.stringify({ProfileID: 13, Region: "eu", MessageID: "by-hand-13"})})
              .then(r => done({sent, status: r.status, id: r.headers.get("Track-Message-Id")}),
                    e => done({sent, error: String(e)}));
        """, url)
        self.assertEqual(result, {"sent": [True, True], "status": 201, "id": "by-hand-13"})
        await wait_until(lambda: len(self.message_ids()) >= 3, "the beacons' events", 30)
        self.assertEqual(execute(self.dsn, "SELECT ProfileID FROM UserEvent ORDER BY ProfileID"),
                         [(11,), (12,), (13,)])

    async def test_retries_keep_the_message_ids_and_refused_events_are_dropped(self) -> None:
        refusal = {"error": "invalid batch: nothing was stored", "events": [{"index": 1, "fields": {"Region": "x"}}]}
        fake = ScriptedCollector([
            (503, {"Retry-After": "1"}, {"error": "the database cannot take events right now"}),
            (413, {}, {"error": "more than 2 events in one batch"}),
            (400, {}, refusal),
        ])
        self.page_root.putChild(b"api", fake)  # on the page's own origin: no CORS in the way
        url = self.origin
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script(TRACK_AND_FLUSH, url, EVENTS)
        self.assertIs(result.get("ok"), False, result)  # the 503
        a, b, c, d = result["ids"]
        # Retried after Retry-After; the 413 halves the batch; the 400 drops
        # exactly the event it names and the rest go again.
        await wait_until(lambda: len(fake.batches) >= 5, "the retries", 60)
        self.assertEqual(fake.batches, [[a, b, c, d], [a, b, c, d], [a, b], [a, c], [d]])
        self.assertIs(await browser.async_script("Track.init({url: arguments[0]}).flush().then(arguments[1])", url),
                      True)
        self.assertEqual(len(fake.batches), 5)
        warnings = [e["message"] for e in await browser.console() if e["level"] == "WARNING"]
        self.assertEqual(len([w for w in warnings if "refused an event" in w]), 1, warnings)

    async def test_events_tracked_just_before_leaving_arrive_exactly_once(self) -> None:
        url = self.collector()
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        # A long flush interval: nothing goes out before the page is left,
        # so the sendBeacon on pagehide has to carry them.
        ids = await browser.script(
            "const t = Track.init({url: arguments[0], flushInterval: 600000});"
            "return arguments[1].map(([kind, fields]) => t.track(kind, fields));", url, EVENTS)
        await browser.get(self.origin + "/bye.html")
        await wait_until(lambda: len(self.message_ids()) >= len(ids), "the beacon's events in the database", 30)
        # Back on the shop, the tracker sends what it had queued again (it
        # never saw the beacon's answer): the collector stores nothing twice.
        await self.open_shop(browser)
        result = await browser.async_script(TRACK_AND_FLUSH, url, [])
        self.assertIs(result.get("ok"), True, result)
        self.assertEqual(self.message_ids(), sorted(ids))
        self.assertEqual(await browser.script(QUEUES, url), {})

    async def test_pagehide_alone_sends_the_queue(self) -> None:
        """Browsers where visibilitychange does not fire on unload (older
        Safari, some in-app web views) still send `pagehide`: on its own, on
        a page that stays visible, it must carry the queue's tail."""
        url = self.collector()
        browser = await Chromium.start(self)
        await self.open_shop(browser)
        ids = await browser.script(
            "const t = Track.init({url: arguments[0], flushInterval: 600000});"
            "return arguments[1].map(([kind, fields]) => t.track(kind, fields));", url, EVENTS)
        state = await browser.script(
            "window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: false}));"
            "return document.visibilityState;")
        self.assertEqual(state, "visible")  # so no visibilitychange to "hidden" did it
        await wait_until(lambda: len(self.message_ids()) >= len(ids), "the pagehide beacon's events", 20)
        self.assertEqual(self.message_ids(), sorted(ids))

    async def test_events_tracked_while_the_collector_is_down_arrive_on_a_later_visit(self) -> None:
        # A port nothing listens on, until the collector starts there.
        listener: Any = reactor
        reserved = listener.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        port = reserved.getHost().port
        await reserved.stopListening()
        url = f"http://127.0.0.1:{port}"
        profile = os.path.abspath(self.mktemp())
        os.makedirs(profile)
        browser = await Chromium.start(self, profile=profile)
        await self.open_shop(browser)
        result = await browser.async_script(TRACK_AND_FLUSH, url, EVENTS)
        self.assertIs(result.get("ok"), False, result)
        (queued,) = (await browser.script(QUEUES, url)).values()
        self.assertEqual([e["MessageID"] for e in queued], result["ids"])
        await browser.quit()  # the tab and the browser closed, offline all along

        self.collector(http=f"tcp:{port}:interface=127.0.0.1")
        browser = await Chromium.start(self, profile=profile)
        await self.open_shop(browser)
        # Only Track.init, no new event: the queue left by the last visit goes out.
        await browser.script("window.t = Track.init({url: arguments[0]})", url)
        await wait_until(lambda: len(self.message_ids()) >= len(EVENTS), "the last visit's events", 30)
        self.assertIs(await browser.async_script("t.flush().then(arguments[0])"), True)
        self.assertEqual(self.message_ids(), sorted(result["ids"]))

    async def test_a_page_on_an_origin_not_allowed_stores_nothing(self) -> None:
        url = self.collector("https://game.example")
        pool = client_pool(self)

        async def forbidden() -> float:
            response = await treq.get(f"{url}/metrics", pool=pool)
            text = (await response.content()).decode()
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("track_events_rejected_total") and "forbidden_origin" in line)

        browser = await Chromium.start(self)
        await self.open_shop(browser)
        result = await browser.async_script(TRACK_AND_FLUSH, url, EVENTS)
        self.assertIs(result.get("ok"), False, result)  # the browser hides the 403 from the script
        # Requests a browser sends without asking first: a form, a no-cors
        # fetch, and beacons of JSON and of a form.
        await browser.script("""
            const [url, event] = arguments;
            const form = new URLSearchParams({ProfileID: "1", Region: "eu"});
            fetch(url + "/api/1.0/track/user/", {method: "POST", mode: "no-cors", body: form});
            navigator.sendBeacon(url + "/api/1.0/track/user/", JSON.stringify(event));
            const data = new FormData(); data.append("ProfileID", "2"); data.append("Region", "eu");
            navigator.sendBeacon(url + "/api/1.0/track/user/", data);
        """, url, EVENTS[0][1])
        # The tracker's batch and the three simple requests were answered 403
        # (the tracker may have retried since: its batch counts once a try).
        clock: Any = reactor
        deadline = clock.seconds() + 30
        while await forbidden() < 4:
            self.assertLess(clock.seconds(), deadline, "timed out waiting for the 403s")
            await deferLater(clock, 0.05, lambda: None)
        self.assertEqual(self.message_ids(), [])
