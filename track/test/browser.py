"""A real headless Chromium (Debian's `chromium` + `chromium-driver`) for
trial tests, driven by Selenium.

Selenium's calls block, and the service under test may run on this very
reactor, so every call goes through `Chromium.run`, which runs it on a thread
and hands back a Deferred.  Each browser gets a fresh profile directory, so
nothing (localStorage included) leaks between tests unless a test reuses one
browser on purpose.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import threads
from twisted.trial.unittest import TestCase

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# .ci/run greps for REQUIRED-SKIPPED: CI installs the browser, so a skip there is a failure.
SKIP = (
    None
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)
    else "REQUIRED-SKIPPED: Debian's chromium and chromium-driver are not installed"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
)

T = TypeVar("T")


def required(case: TestCase) -> None:
    """Skip `case` (loudly, see SKIP) when the browser is missing."""
    if SKIP:
        case.skipTest(SKIP)


class Chromium:
    """One headless Chromium with its own profile; `quit()` ends it."""

    def __init__(self, driver: Any, profile: str) -> None:
        self.driver = driver
        self.profile = profile

    @classmethod
    async def start(cls, case: TestCase, profile: str | None = None) -> Chromium:
        """A browser that quits when `case` ends.  `profile` reuses a
        profile directory (localStorage survives a browser restart)."""
        required(case)
        own = profile is None
        directory = profile or tempfile.mkdtemp(prefix="track-chromium-")
        driver = await threads.deferToThread(_launch, directory)
        browser = cls(driver, directory)
        case.addCleanup(browser.quit, remove_profile=own)
        return browser

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(driver, *args)` on a thread: Selenium blocks."""
        result: T = await threads.deferToThread(call, self.driver, *args)
        return result

    async def get(self, url: str) -> None:
        await self.run(lambda d: d.get(url))

    async def script(self, source: str, *args: Any) -> Any:
        """Run JavaScript in the page; `return` gives its value."""
        return await self.run(lambda d: d.execute_script(source, *args))

    async def async_script(self, source: str, *args: Any, timeout: float = 30.0) -> Any:
        """Run JavaScript that ends by calling `arguments[arguments.length - 1](value)`."""

        def call(driver: Any) -> Any:
            driver.set_script_timeout(timeout)
            return driver.execute_async_script(source, *args)

        return await self.run(call)

    async def console(self) -> list[dict[str, Any]]:
        """The page's console messages since the last call."""
        entries: list[dict[str, Any]] = await self.run(lambda d: d.get_log("browser"))
        return entries

    async def screenshot(self, path: str) -> None:
        await self.run(lambda d: d.save_screenshot(path))

    async def quit(self, remove_profile: bool = False) -> None:
        try:
            await self.run(lambda d: d.quit())
        finally:
            if remove_profile:
                shutil.rmtree(self.profile, ignore_errors=True)


def _launch(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
