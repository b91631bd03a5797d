"""The health answer is built without touching a file on the reactor
thread: the dead-letter counts are the spool's last count, redone on its
own thread."""

from __future__ import annotations

import os
import threading
from typing import Any
from unittest import mock

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from track.admin.health import ProcessHealth
from track.fields.kinds import KINDS
from track.pipeline.writer import Writer
from track.spool.deadletters import entry
from track.test.pipeline.test_writer import Database
from track.test.support import open_spool

PURCHASE = KINDS["purchase"]


class HealthTests(TestCase):
    @inlineCallbacks
    def test_dead_letters_are_counted_off_the_reactor_thread(self) -> Any:
        spool = open_spool(self, self.mktemp())
        health = ProcessHealth(Writer(Database(), spool, Clock(), dict(KINDS)))
        yield spool.dead_letter([entry(None, None, "refused", b"x"), entry(None, None, "refused", b"y")])
        self.assertEqual(health.health()["dead_letter"], {"events": 2, "corrupt_bytes": 0})
        # That answer started a recount on the spool's thread: let it end
        # before the file goes, or it may already see the file gone.
        for _ in range(500):
            if not spool._recounting:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(spool._recounting)
        # A resend (another process) takes them away: the next answer is
        # still the last count, made without a stat, and a later one sees it.
        os.remove(spool.dead_letters.path)
        on_reactor: list[str] = []
        real_stat, real_listdir = os.stat, os.listdir

        def watched(real: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                if threading.current_thread() is threading.main_thread():
                    on_reactor.append(str(args[0]))
                return real(*args, **kwargs)
            return call

        with mock.patch("os.stat", watched(real_stat)), mock.patch("os.listdir", watched(real_listdir)):
            self.assertEqual(health.health()["dead_letter"]["events"], 2)
        self.assertEqual(on_reactor, [])
        for _ in range(200):
            if health.health()["dead_letter"]["events"] == 0:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(health.health()["dead_letter"], {"events": 0, "corrupt_bytes": 0})
