"""The state directories of parents killed with -9, swept by the next
parent: only a dead parent's, only once nothing in it changed for a while."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from track.run.leftovers import PREFIX, state_prefix, sweep

NOW = 2_000_000_000.0


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class SweepTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = os.path.abspath(self.mktemp())
        os.mkdir(self.tmp)

    def state(self, name: str, age: float) -> str:
        """A state directory as a parent leaves it, last changed `age` s ago."""
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(path, "metrics"))
        for file in (os.path.join(path, "metrics", "counter_1.db"), os.path.join(path, "worker-0.json")):
            with open(file, "w") as f:
                f.write("x")
            os.utime(file, (NOW - age, NOW - age))
        for directory in (os.path.join(path, "metrics"), path):
            os.utime(directory, (NOW - age, NOW - age))
        return path

    def test_only_a_dead_parents_quiet_directory_is_removed(self) -> None:
        dead = dead_pid()
        stale = self.state(f"{PREFIX}{dead}-abc", age=3600)
        draining = self.state(f"{PREFIX}{dead}-def", age=30)  # its workers may still be writing
        living = self.state(f"{PREFIX}{os.getppid()}-ghi", age=3600)
        mine = self.state(f"{state_prefix()}jkl", age=3600)
        older_format = self.state(f"{PREFIX}x1y2z3", age=3600)  # no pid in the name: not ours to judge
        other = self.state("something-else", age=3600)
        self.assertEqual(sweep(self.tmp, quiet=600, now=NOW), [stale])
        self.assertFalse(os.path.exists(stale))
        for kept in (draining, living, mine, older_format, other):
            self.assertTrue(os.path.isdir(kept), kept)

    def test_a_file_changed_recently_deep_inside_keeps_it(self) -> None:
        path = self.state(f"{PREFIX}{dead_pid()}-abc", age=3600)
        recent = os.path.join(path, "metrics", "counter_1.db")
        os.utime(recent, (NOW - 5, NOW - 5))
        self.assertEqual(sweep(self.tmp, quiet=600, now=NOW), [])
        self.assertTrue(os.path.isdir(path))

    def test_a_missing_directory_is_nothing_to_do(self) -> None:
        self.assertEqual(sweep(os.path.join(self.tmp, "nowhere")), [])
