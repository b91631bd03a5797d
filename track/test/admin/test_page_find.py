"""The live page's table in a real headless Chromium, against one `twistd
track --admin-http` process: the search is answered by the server over
everything it holds (an event older than the rows on screen is found),
pause holds the table while what arrives is kept for the resume, a line
opens to every field with its raw JSON, and when the feed stops answering
the page says since when.

With TRACK_ADMIN_SHOTS=directory, it saves a screenshot of each step there
(to look at; they are not committed)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.admin.test_page_browser import FORM, WAIT_FOR_TEXT
from track.test.browser import Chromium, required
from track.test.process import TwistdTrack, port_of, wait_until
from track.test.support import dsn_text, sqlite_dsn

_ADMIN = re.compile(rb"admin page on (http://127\.0\.0\.1:\d+/)")

# Resolves with the table's rows (MessageID, or status for a refused
# request) once `arguments[0]` (a JS expression over `rows`) is true, or
# after arguments[1] ms.
WAIT_FOR_ROWS = """
const [condition, within, done] = arguments;
const test = new Function("rows", "return " + condition);
const start = Date.now();
(function check() {
  const rows = Array.from(document.querySelectorAll('#events tr.event')).map(
    (r) => r.dataset.messageId || r.querySelector('.badge').textContent);
  if (test(rows) || Date.now() - start > within) done(rows); else setTimeout(check, 50);
})();
"""
TYPE = """
const [id, value] = arguments; const input = document.getElementById(id);
input.value = value; input.dispatchEvent(new Event('input'));
"""
CLICK = "document.querySelector(arguments[0]).click();"
TEXT = "return document.querySelector(arguments[0]).innerText;"


class PageFindTests(TestCase):
    timeout = 120

    async def shot(self, browser: Chromium, name: str) -> None:
        directory = os.environ.get("TRACK_ADMIN_SHOTS")
        if directory:
            await browser.screenshot(os.path.join(directory, name + ".png"))

    async def test_search_pause_expand_and_stale(self) -> None:
        required(self)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        proc = TwistdTrack(["--dsn", dsn_text(sqlite_dsn(self)), "--http", "tcp:0:interface=127.0.0.1",
                            "--admin-http", "tcp:0:interface=127.0.0.1", "--admin-keep", "300"], cwd)
        self.addCleanup(proc.stop)
        public = port_of(await proc.ready)
        await wait_until(lambda: _ADMIN.search(proc.output), "the admin page")
        admin = _ADMIN.search(proc.output)
        assert admin is not None
        pool = HTTPConnectionPool(reactor, persistent=False)
        url = f"http://127.0.0.1:{public}/api/1.0/track"

        async def post(kind: str, body: bytes, headers: dict[str | bytes, str | bytes], code: int) -> None:
            response = await treq.post(f"{url}/{kind}/", data=body, headers=headers, pool=pool)
            await response.content()
            self.assertEqual(response.code, code)

        events = [{"type": "user", "ProfileID": n, "Region": "eu", "MessageID": f"find-{n}"} for n in range(150)]
        await post("batch", json.dumps({"events": events}).encode(), {"Content-Type": "application/json"}, 201)
        await post("user", b"ProfileID=nope&Region=eu", FORM, 400)

        browser = await Chromium.start(self)
        await browser.run(lambda d: d.set_window_size(1400, 1100))
        await browser.get(admin.group(1).decode())
        rows = await browser.async_script(WAIT_FOR_ROWS, "rows.length === 101", 20000)
        self.assertEqual((len(rows), rows[0], rows[1]), (101, "400", "find-149"))  # the newest 100, and the refusal
        self.assertIn("of 151 matching", await browser.script(TEXT, "#events-count"))
        self.assertIn("keeps the latest 300", await browser.script(TEXT, "#events-count"))
        await self.shot(browser, "1-opened")

        # Search: find-7 is older than the 100 rows the page was sent.
        await browser.script(TYPE, "search", "MessageID=find-7")
        self.assertEqual(await browser.async_script(WAIT_FOR_ROWS, "rows.length === 1", 10000), ["find-7"])
        await self.shot(browser, "2-searched")
        await browser.script(TYPE, "search", "")
        await browser.async_script(WAIT_FOR_ROWS, "rows.length === 101", 10000)

        # Expand: a line opens to its fields (the empty ones hidden until
        # asked for) and its raw JSON, with a copy button.
        await browser.script(CLICK, "#events tr.event[data-message-id='find-149']")
        detail = await browser.script(TEXT, "#events tr.detail-row")
        self.assertIn("ProfileID\n149", detail)
        self.assertNotIn("Referrer", detail.split("raw JSON")[0])
        self.assertIn('"message_id": "find-149"', detail)
        self.assertIn("copy JSON", detail)
        await browser.script(CLICK, "#show-empty")
        self.assertIn("Referrer", (await browser.script(TEXT, "#events tr.detail-row")).split("raw JSON")[0])
        await browser.script("document.querySelector('#events-section').scrollIntoView()")
        await self.shot(browser, "3-expanded")

        # Pause: the table holds still while three events arrive; resume shows them.
        await browser.script(CLICK, "#pause")
        for n in range(3):
            await post("user", f"ProfileID={n}&Region=eu&MessageID=while-paused-{n}".encode(), FORM, 201)
        noted = await browser.async_script(WAIT_FOR_TEXT, ["3 arrived since"], 10000)
        self.assertEqual(noted["found"], ["3 arrived since"])
        held = await browser.async_script(WAIT_FOR_ROWS, "false", 1500)
        self.assertEqual((len(held), held[1]), (101, "find-149"))
        await self.shot(browser, "4-paused")
        await browser.script(CLICK, "#pause")
        resumed = await browser.async_script(WAIT_FOR_ROWS, "rows[0] === 'while-paused-2'", 10000)
        self.assertEqual(resumed[:3], ["while-paused-2", "while-paused-1", "while-paused-0"])
        self.assertIn("of 154 matching", await browser.script(TEXT, "#events-count"))

        # The feed stops answering: the status is marked stale, with the time of the last answer.
        await proc.stop()
        stale = await browser.async_script(WAIT_FOR_TEXT, ["stale: last answer at", "no answer"], 15000)
        self.assertEqual(stale["found"], ["stale: last answer at", "no answer"])
        self.assertTrue(await browser.script("return document.body.classList.contains('stale')"))
        await self.shot(browser, "5-stale")
        errors: list[Any] = [e for e in await browser.console()
                             if e.get("level") == "SEVERE" and "Failed to load resource" not in e.get("message", "")
                             and "ERR_CONNECTION_REFUSED" not in e.get("message", "")]
        self.assertEqual(errors, [])
