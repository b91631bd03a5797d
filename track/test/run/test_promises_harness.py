"""The test harness keeps its own promises: a stopped twistd is stopped once
and without a race, twistd children report the port the kernel gave them,
a missing real part is never skipped silently, and Hypothesis runs the same
examples every time without writing into the working directory."""

from __future__ import annotations

import os
from datetime import timedelta

import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from track.test import mariadb, support
from track.test.process import TwistdTrack, port_of


class TwistdTrackTests(TestCase):
    timeout = 120

    def cwd(self) -> str:
        path: str = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path

    async def test_listens_on_the_port_the_kernel_gave_and_stops_without_racing_its_exit(self) -> None:
        proc = TwistdTrack(["--http", "tcp:0:interface=127.0.0.1"], self.cwd())
        self.addCleanup(proc.stop)
        base = await proc.ready
        self.assertNotEqual(port_of(base), 0)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(f"{base}/healthz", pool=pool)
        await response.content()
        self.assertEqual(response.code, 200)
        reason = await proc.stop()
        self.assertIsInstance(reason, (ProcessDone, ProcessTerminated))
        self.assertIsNone(proc.pid)
        # Gone now: a signal is a no-op (not ProcessExitedAlready), and a
        # second stop (a test's cleanup after the test stopped it) is too.
        self.assertFalse(proc.signal("TERM"))
        self.assertFalse(proc.signal("KILL"))
        self.assertIs((await proc.stop()), reason)
        self.assertIs((await proc.wait()), reason)

    async def test_a_twistd_that_exits_by_itself_can_still_be_stopped(self) -> None:
        # An unusable --http: twistd exits at once with a usage error.
        proc = TwistdTrack(["--http", "bogus:thing"], self.cwd())
        failure = await self.assertFailure(proc.ready, RuntimeError)
        self.assertIn("twistd exited before listening", str(failure))
        self.assertIn("--http", str(failure))
        reason = await proc.stop()
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertFalse(proc.signal("TERM"))


class RequiredSkipTests(SynchronousTestCase):
    """.ci/run fails on REQUIRED-SKIPPED (and on MYSQL-SKIPPED)."""

    def test_a_missing_real_part_is_a_marked_skip(self) -> None:
        self.assertIsNone(mariadb.required(None))
        self.assertEqual(mariadb.required("chromium is missing"), "REQUIRED-SKIPPED: chromium is missing")
        marked = mariadb.required("REQUIRED-SKIPPED: galera is missing")
        self.assertEqual(marked, "REQUIRED-SKIPPED: galera is missing")

    def test_mysql_and_mariadbd_skips_carry_the_marker(self) -> None:
        if support.MYSQL_SKIP:
            self.assertIn("REQUIRED-SKIPPED", mariadb.MYSQL_SKIP or "")
            self.assertIn("MYSQL-SKIPPED", mariadb.MYSQL_SKIP or "")
        else:
            self.assertIsNone(mariadb.MYSQL_SKIP)
        if mariadb.MARIADBD_SKIP is not None:
            self.assertIn("REQUIRED-SKIPPED", mariadb.MARIADBD_SKIP)


class HypothesisProfileTests(SynchronousTestCase):
    def test_the_ci_profile_is_loaded_unless_another_is_asked_for(self) -> None:
        ci = settings.get_profile("ci")
        self.assertEqual((ci.derandomize, ci.database, ci.deadline), (True, None, timedelta(seconds=2)))
        if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":
            loaded = settings()  # the settings a test gets when it asks for nothing
            self.assertEqual((loaded.derandomize, loaded.database, loaded.deadline),
                             (True, None, timedelta(seconds=2)))

    def test_a_derandomized_run_draws_the_same_examples_every_time(self) -> None:
        if not settings().derandomize:
            self.skipTest(f"HYPOTHESIS_PROFILE={os.environ.get('HYPOTHESIS_PROFILE')} is randomized")
        runs: list[list[bytes]] = []

        def draw() -> None:
            seen: list[bytes] = []

            @settings(max_examples=20)
            @given(st.binary(min_size=1))
            def record(data: bytes) -> None:
                seen.append(data)

            record()
            runs.append(seen)

        draw()
        draw()
        self.assertEqual(runs[0], runs[1])
        # The example database is .hypothesis/examples; newer Hypothesis
        # releases also cache constants in .hypothesis/ whatever the profile
        # says (any test in this trial worker may have made it first).
        self.assertFalse(os.path.exists(os.path.join(".hypothesis", "examples")),
                         "Hypothesis wrote an example database here")
