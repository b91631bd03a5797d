"""The admin page behind `--admin-token-file`, in a real headless Chromium:
auth.js asks for the token when the feed answers 401, asks again after a
wrong one, keeps the right one in the tab's sessionStorage (a reload does
not ask again), and every feed request carries it (the event shows)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from track.test.browser import Chromium, required
from track.test.process import TwistdTrack, port_of

TOKEN = "page-token-5d1f8a"
QUESTION = "This admin page needs its token (--admin-token):"
FORM: dict[str | bytes, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}

# Resolves once the page's text holds every string in arguments[0], or
# after arguments[1] ms with what it holds then.
WAIT_FOR_TEXT = """
const [wanted, within, done] = arguments;
const start = Date.now();
(function check() {
  const text = document.body.innerText;
  if (wanted.every((w) => text.includes(w)) || Date.now() - start > within) {
    done({found: wanted.filter((w) => text.includes(w)), shown: window.trackLinkShown,
          stored: sessionStorage.getItem('track-admin-token'), marker: window.trackTestMarker || null});
  } else {
    setTimeout(check, 50);
  }
})();
"""


# Installed before any page script runs: keeps every text the status pill
# (#link) is given, in window.trackLinkShown, so a test sees what the user
# saw between two of its own looks.
RECORD_LINK = """
window.trackLinkShown = [];
new MutationObserver((records) => {
  for (const r of records) {
    const pill = r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement;
    if (pill && pill.id === "link") window.trackLinkShown.push(pill.textContent);
  }
}).observe(document, {childList: true, characterData: true, subtree: true});
"""


def until_live(shown: list[str]) -> list[str]:
    """The status pill's texts up to its first "live"."""
    return shown[:shown.index("live") + 1] if "live" in shown else shown


def answer_prompt(within: float, reply: str | None) -> Any:
    """A call for `Chromium.run`: waits (at most `within` s) for the page's
    prompt, types `reply` and accepts it (None: cancels); the prompt's text,
    or None if none came."""

    def call(driver: Any) -> str | None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            alert = WebDriverWait(driver, within, poll_frequency=0.05).until(expected_conditions.alert_is_present())
        except TimeoutException:
            return None
        text: str = alert.text
        if reply is None:
            alert.dismiss()
        else:
            alert.send_keys(reply)
            alert.accept()
        return text

    return call


class TokenPageTests(TestCase):
    timeout = 180

    async def wait_for_text(self, browser: Chromium, wanted: list[str]) -> dict[str, Any]:
        """WAIT_FOR_TEXT (15 s at most); a question from the page meanwhile fails the test."""
        from selenium.common.exceptions import UnexpectedAlertPresentException

        try:
            seen = await browser.async_script(WAIT_FOR_TEXT, wanted, 15000)
        except UnexpectedAlertPresentException as e:
            self.fail(f"the page asked again: {e.alert_text!r}")
        if not isinstance(seen, dict):  # Chromedriver closes a prompt that opens meanwhile and answers null
            self.fail(f"the page asked again, or its script did not finish: {seen!r}")
        return seen

    async def test_the_page_asks_once_per_tab_and_shows_the_feed_with_the_token(self) -> None:
        required(self)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        token_file = os.path.join(cwd, "admin-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        proc = TwistdTrack(["--http", "tcp:0:interface=127.0.0.1", "--admin-http", "tcp:0:interface=127.0.0.1",
                            "--admin-token-file", token_file], cwd)
        self.addCleanup(proc.stop)
        public = port_of(await proc.ready)
        admin = await proc.admin()

        tag = uuid.uuid4().hex[:12]
        pool = HTTPConnectionPool(reactor, persistent=False)
        posted = await treq.post(f"http://127.0.0.1:{public}/api/1.0/track/session/", pool=pool, headers=FORM,
                                 data=f"Region=eu&SessionID=s-{tag}&RemoteIP=10.0.0.9&SessionType=game"
                                      f"&MessageID=token-page-{tag}".encode())
        self.assertEqual(posted.code, 201)
        await posted.content()
        # Without the token the feed holds nothing for anyone.
        refused = await treq.get(f"{admin}/feed", pool=pool)
        self.assertEqual(refused.code, 401)
        await refused.content()

        browser = await Chromium.start(self)
        await browser.run(lambda d: d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_LINK}))
        await browser.get(f"{admin}/")
        # The first feed request is refused: the page asks for the token.
        self.assertEqual(await browser.run(answer_prompt(20, "not-the-token")), QUESTION)
        # A wrong token is refused by the listener, and the page asks again
        # (auth.js forgets it at the next 401).
        self.assertEqual(await browser.run(answer_prompt(20, TOKEN)), QUESTION)
        wanted = ["live", f"token-page-{tag}"]
        seen = await self.wait_for_text(browser, wanted)
        self.assertEqual(seen["found"], wanted, seen)
        self.assertEqual(seen["stored"], TOKEN)
        # The request refused before the right token was typed was sent
        # again with it: the page went from the wrong token's refusal
        # straight to live, never showing a refusal after the right token.
        refusal = "no answer (HTTP 401): it has not answered yet"
        self.assertEqual(until_live(seen["shown"]), ["connecting…", refusal, "live"], seen["shown"])
        # No third question is open now that the page is live.
        self.assertIsNone(await browser.run(answer_prompt(0, None)))

        # A reload in the same tab keeps sessionStorage: no question, and the
        # feed's requests still carry the token (the event shows again).
        await browser.script("window.trackTestMarker = 'before the reload'")
        await browser.run(lambda d: d.refresh())
        seen = await self.wait_for_text(browser, wanted)
        self.assertEqual(seen["found"], wanted, seen)
        self.assertEqual(until_live(seen["shown"]), ["connecting…", "live"], "the reloaded page was refused first")
        self.assertIsNone(await browser.run(answer_prompt(0, None)))
        self.assertIsNone(seen["marker"], "the page was not reloaded")
        errors = [e for e in await browser.console()
                  if e.get("level") == "SEVERE" and "401" not in str(e.get("message"))]
        self.assertEqual(errors, [])
