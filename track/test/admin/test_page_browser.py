"""The live page in a real headless Chromium, against `twistd track
--workers 2 --admin-http`: events posted while the page is open appear on
it without a reload, the refused one with its error, field by field.

With TRACK_ADMIN_SCREENSHOT=path, the test also saves a screenshot of the
page there (that is how docs/admin-page.png is made)."""

from __future__ import annotations

import json
import os
import re
import uuid

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.browser import Chromium, required
from track.test.mariadb import MYSQL_SKIP
from track.test.process import TwistdTrack, port_of, wait_until
from track.test.support import mysql_dsn_text, reset_mysql

_ADMIN = re.compile(rb"admin page on (http://127\.0\.0\.1:\d+/)")
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}


def with_agent(agent: str) -> dict[str | bytes, str | bytes]:
    return {**FORM, "User-Agent": agent}


# Clicks the first row that matches arguments[0].
CLICK_ROW = "document.querySelector(arguments[0]).click();"

# Resolves once the page's text holds every string in arguments[0], or
# after arguments[1] ms with what it holds then.
WAIT_FOR_TEXT = """
const [wanted, within, done] = arguments;
const start = Date.now();
(function check() {
  const text = document.body.innerText;
  if (wanted.every((w) => text.includes(w)) || Date.now() - start > within) {
    done({found: wanted.filter((w) => text.includes(w)), ms: Date.now() - start, marker: window.trackTestMarker});
  } else {
    setTimeout(check, 50);
  }
})();
"""


class LivePageTests(TestCase):
    skip = MYSQL_SKIP
    timeout = 180

    async def test_refused_and_accepted_events_appear_without_a_reload(self) -> None:
        required(self)
        reset_mysql(self)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        proc = TwistdTrack(["--dsn", mysql_dsn_text(self), "--http", "tcp:0:interface=127.0.0.1", "--workers", "2",
                            "--admin-http", "tcp:0:interface=127.0.0.1"], cwd)
        self.addCleanup(proc.stop)
        public = port_of(await proc.ready)
        await wait_until(lambda: proc.output.count(b"track listening on") >= 3 and _ADMIN.search(proc.output),
                         "two workers and the admin page")
        admin = _ADMIN.search(proc.output)
        assert admin is not None
        browser = await Chromium.start(self)
        await browser.get(admin.group(1).decode())
        ready = await browser.async_script(WAIT_FOR_TEXT, ["live", "Latest events"], 20000)
        self.assertEqual(ready["found"], ["live", "Latest events"])
        await browser.script("window.trackTestMarker = 'not reloaded'")
        # Each worker notices the open page within half a second and from
        # then on keeps its accepted events for it.
        pool = HTTPConnectionPool(reactor, persistent=False)

        async def recording() -> list[bool]:
            response = await treq.get(f"{admin.group(1).decode()}healthz", pool=pool)
            return [w.get("recording") for w in json.loads(await response.content())["workers"]]

        seen_recording: list[list[bool]] = []
        while (await recording()) != [True, True]:
            seen_recording.append(await recording())
            self.assertLess(len(seen_recording), 200, f"workers not recording: {seen_recording[-3:]}")
            await deferLater(reactor, 0.05, lambda: None)

        tag = uuid.uuid4().hex[:12]
        url = f"http://127.0.0.1:{public}/api/1.0/track"
        refused = await treq.post(f"{url}/user/", data=f"ProfileID=twelve&Region=eu&Message=refused-{tag}".encode(),
                                  headers=with_agent(f"page-test/{tag}"), pool=pool)
        self.assertEqual(refused.code, 400)
        await refused.content()
        accepted = await treq.post(f"{url}/session/", pool=pool, headers=FORM,
                                   data=f"Region=eu&SessionID=s-{tag}&RemoteIP=10.0.0.9&SessionType=game"
                                        f"&MessageID=page-ok-{tag}".encode())
        self.assertEqual(accepted.code, 201)
        await accepted.content()

        wanted = ["must be an integer", f"page-ok-{tag}"]
        seen = await browser.async_script(WAIT_FOR_TEXT, wanted, 10000)
        self.assertEqual(seen["found"], wanted)
        self.assertEqual(seen["marker"], "not reloaded")
        # The refused request's line opens to its error, field by field, its client and User-Agent.
        await browser.script(CLICK_ROW, "tr.event.rejected")
        shows = [f"page-test/{tag}", "body sent", f"refused-{tag}"]
        opened = await browser.async_script(WAIT_FOR_TEXT, shows, 5000)
        self.assertEqual(opened["found"], shows)
        offending = await browser.script(
            "return Array.from(document.querySelectorAll('#events .fields.errors dt')).map(e => e.textContent)")
        self.assertIn("ProfileID", offending)

        # The kind filter is answered by the server: the session event hides under "user".
        shown = """
        const [kind, done] = arguments; const select = document.getElementById('kind');
        select.value = kind; select.dispatchEvent(new Event('change'));
        setTimeout(() => done(Array.from(document.querySelectorAll('#events tr.event')).map(e => e.dataset.messageId)),
                   1500);
        """
        self.assertIn(f"page-ok-{tag}", await browser.async_script(shown, "session"))
        self.assertNotIn(f"page-ok-{tag}", await browser.async_script(shown, "user"))
        await browser.async_script(shown, "")
        errors = [e for e in await browser.console() if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [])
        path = os.environ.get("TRACK_ADMIN_SCREENSHOT")
        if path:
            await browser.run(lambda d: d.set_window_size(1400, 1000))
            await browser.screenshot(path)
