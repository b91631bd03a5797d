"""The browser helper drives a real Chromium against a page this reactor serves."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from track.test.browser import Chromium


class BrowserTests(TestCase):
    async def test_page_served_here_runs_script(self) -> None:
        root = Resource()
        root.putChild(b"page", Data(b"<title>hello from track</title>", "text/html"))
        listener: Any = reactor
        port = listener.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        browser = await Chromium.start(self)
        await browser.get(f"http://127.0.0.1:{port.getHost().port}/page")
        self.assertEqual(await browser.script("return document.title"), "hello from track")
        self.assertEqual(await browser.async_script("arguments[0](6 * 7)"), 42)
