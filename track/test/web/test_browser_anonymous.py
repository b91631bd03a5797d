"""track.js's t.anonymous(true) in a real headless Chromium, on a page of
another origin, against the real service and MariaDB: no client address is
stored for the events tracked after it, whether they go by fetch (the
Track-Anonymous header, after a CORS preflight) or by a sendBeacon on
pagehide (`"Anonymous": true` in the body); those tracked after
t.anonymous(false) keep it."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from track.test.browser import Chromium
from track.test.process import wait_until
from track.test.support import MYSQL_SKIP, execute, reset_mysql, serve
from track.test.web.test_browser_tracker import serve_pages

ITEM = {"ProfileID": 1, "Region": "eu", "ItemName": "sword", "ItemType": "weapon", "IsUGC": False}
# With a tracker for the collector at arguments[0] (options merged from
# arguments[1]): two events anonymously, one after anonymous(false); their MessageIDs.
TRACK_BOTH_WAYS = """
const t = window.t = Track.init(Object.assign({url: arguments[0]}, arguments[1]));
t.anonymous(true);
const hidden = [t.track("user", {ProfileID: 1, Region: "eu"}), t.track("item", arguments[2])];
t.anonymous(false);
return {hidden, shown: t.track("user", {ProfileID: 2, Region: "eu"})};
"""


class AnonymousTrackerTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 240

    def setUp(self) -> None:
        self.dsn = reset_mysql(self)
        self.origin = serve_pages(self)
        port, _ = serve(self, self.dsn, cors_origin=[self.origin])
        self.url = f"http://127.0.0.1:{port}"

    def remote_ips(self) -> dict[str, str]:
        """MessageID -> RemoteIP of every user and item event stored."""
        return dict(execute(self.dsn, "SELECT MessageID, RemoteIP FROM UserEvent UNION ALL "
                                      "SELECT MessageID, RemoteIP FROM ItemEvent"))

    async def tracked(self, options: dict[str, Any]) -> tuple[Chromium, dict[str, Any]]:
        browser = await Chromium.start(self)
        await browser.get(self.origin + "/shop.html")
        ids: dict[str, Any] = await browser.script(TRACK_BOTH_WAYS, self.url, options, ITEM)
        return browser, ids

    async def test_by_fetch_the_header_keeps_no_address(self) -> None:
        browser, ids = await self.tracked({})
        self.assertIs(await browser.async_script("t.flush().then(arguments[0])"), True)
        hidden_user, hidden_item = ids["hidden"]
        self.assertEqual(self.remote_ips(), {hidden_user: "", hidden_item: "", ids["shown"]: "127.0.0.1"})

    async def test_by_a_beacon_on_pagehide_the_body_keeps_no_address(self) -> None:
        # A long flush interval: nothing goes by fetch before the page is left.
        browser, ids = await self.tracked({"flushInterval": 600000})
        await browser.get(self.origin + "/bye.html")
        await wait_until(lambda: len(self.remote_ips()) >= 3, "the beacons' events in the database", 30)
        hidden_user, hidden_item = ids["hidden"]
        self.assertEqual(self.remote_ips(), {hidden_user: "", hidden_item: "", ids["shown"]: "127.0.0.1"})
