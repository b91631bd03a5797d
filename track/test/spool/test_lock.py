"""One process per spool directory: the second finds it locked, is told by
whom, and gets it once the holder is gone, however it went.  And the
resend command beside a running service: one at a time, and no dead
letter appended into the file it is taking away."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import signal
import subprocess
import sys
import threading

from twisted.trial.unittest import SynchronousTestCase

from track.spool.disk import append_exclusively
from track.spool.lock import DirectoryLock, SpoolLocked
from track.spool.resend import RESEND_LOCK
from track.spool.resend import main as resend_main

# A process that takes the lock, says so, and waits to be killed.
_HOLDER = ("import sys, time; from track.spool.lock import DirectoryLock; "
           "DirectoryLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")


class LockTests(SynchronousTestCase):
    def holder(self, directory: str) -> subprocess.Popen[str]:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        env = {**os.environ, "PYTHONPATH": root}
        proc = subprocess.Popen([sys.executable, "-c", _HOLDER, directory], stdout=subprocess.PIPE,
                                text=True, cwd=root, env=env)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.kill)
        assert proc.stdout is not None
        self.assertEqual(proc.stdout.readline().strip(), "held")
        return proc

    def test_a_second_process_is_refused_with_the_directory_and_the_holders_pid(self) -> None:
        directory = os.path.abspath(self.mktemp())
        proc = self.holder(directory)
        e = self.assertRaises(SpoolLocked, DirectoryLock(directory).acquire)
        self.assertEqual(str(e), f"spool directory {directory} is in use by process {proc.pid}")

    def test_the_lock_is_free_once_the_holder_is_killed(self) -> None:
        directory = os.path.abspath(self.mktemp())
        proc = self.holder(directory)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lock = DirectoryLock(directory).acquire()
        self.addCleanup(lock.release)
        self.assertTrue(lock.held)
        with open(os.path.join(directory, "lock")) as f:
            self.assertEqual(f.read().strip(), str(os.getpid()))

    def test_released_it_can_be_taken_again(self) -> None:
        directory = self.mktemp()
        first = DirectoryLock(directory).acquire()
        self.assertRaises(SpoolLocked, DirectoryLock(directory).acquire)
        first.release()
        DirectoryLock(directory).acquire().release()


class DeadLetterHandOverTests(SynchronousTestCase):
    def test_an_append_waiting_while_the_file_is_renamed_lands_in_the_new_file(self) -> None:
        """The resend command renames the dead letters away while the
        service may be appending: the append waits, then writes to a new
        file, never into the one being re-sent."""
        directory = self.mktemp()
        os.makedirs(directory)
        path, taken = os.path.join(directory, "events.jsonl"), os.path.join(directory, "resending.jsonl")
        append_exclusively(path, b"old\n")
        with open(path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # a rename_exclusively in progress
            appending = threading.Thread(target=append_exclusively, args=(path, b"new\n"))
            appending.start()
            appending.join(0.2)
            self.assertTrue(appending.is_alive(), "the append did not wait for the lock")
            os.rename(path, taken)
        appending.join(10)
        with open(taken, "rb") as f:
            self.assertEqual(f.read(), b"old\n")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"new\n")

    def test_a_second_resend_of_a_spool_exits_naming_the_first(self) -> None:
        directory = os.path.abspath(self.mktemp())
        held = DirectoryLock(directory, RESEND_LOCK).acquire()
        self.addCleanup(held.release)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = resend_main(["resend", directory, "http://127.0.0.1:9"])
        self.assertEqual(code, 2)
        self.assertEqual(err.getvalue(), "python -m track.spool resend: the dead letters of spool directory "
                                         f"{directory} is in use by process {os.getpid()}\n")
