"""What a supervisor (systemd, a container runtime) sees: the parent of
`--workers` killed with -9, a restart beside a process still running, and
a start while the database accepts connections and never answers.

Each runs `twistd -n track` against a private mariadbd, with clients
retrying by MessageID, and checks every acknowledged event is stored once.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from track.test import faultcase
from track.test.faultcase import spool_segments, wait_until
from track.test.process import TwistdTrack, alive, children

ORPHAN_SECONDS = 5.0  # the longest a worker may outlive its parent
CONNECT_TIMEOUT = 2  # the DSN's connect_timeout in the frozen-database test



def exited(proc: TwistdTrack) -> Deferred[Exception]:
    """Fires with the exit reason of a twistd expected not to listen."""
    proc.ready.addErrback(lambda _: None)  # it says why in its output, checked by the caller
    return proc.wait(30)


class SupervisorTests(faultcase.FaultCase):
    """See the module docstring; the harness is faultcase.FaultCase."""

    def mariadbd_pid(self) -> int:
        with open(self.db.pid_file) as f:
            return int(f.read().strip())

    async def start_workers(self, *extra: str) -> TwistdTrack:
        await self.start_track("--workers", "2", *extra)
        proc = self.proc
        assert proc is not None
        await wait_until(lambda: proc.output.count(b"track listening on") >= 3, "both workers to listen")
        return proc

    async def test_kill_9_of_the_parent_under_load_ends_its_workers_and_a_restart_starts_at_once(self) -> None:
        proc = await self.start_workers()
        assert proc.pid is not None
        workers = children(proc.pid)
        self.assertEqual(len(workers), 2, workers)
        load = self.load(tolerate_refused=True, persistent=False, clients=16)
        await load.wait_for_acks(300)

        killed_at = reactor.seconds()
        proc.signal("KILL")
        await proc.ended
        await wait_until(lambda: not any(map(alive, workers)), "the workers to exit", timeout=ORPHAN_SECONDS)
        print(f"\nworkers gone {reactor.seconds() - killed_at:.2f}s after the parent")

        # The same arguments again, once: no retry, no "address in use".
        again = TwistdTrack(["--dsn", self.db.dsn("track"), "--http", f"tcp:{self.port}:interface=127.0.0.1",
                             "--workers", "2"], self.cwd)
        self.procs.append(again)
        self.addCleanup(again.stop)
        self.proc = again
        self.assertEqual(await again.ready, self.base)
        await wait_until(lambda: again.output.count(b"track listening on") >= 3, "both new workers to listen")
        await load.wait_for_acks(len(load.acked) + 300)
        await load.stop()
        dirs = [os.path.join(self.spool_dir, f"worker-{n}") for n in range(2)]
        await wait_until(lambda: not any(spool_segments(d) for d in dirs), "the workers' spools to be replayed")
        self.assertNotIn(b"Traceback", again.output)
        self.assertNotIn(b"in use", again.output)
        self.check_stored_once(load)

    async def test_a_second_collector_on_a_spool_in_use_exits_with_one_line(self) -> None:
        proc = await self.start_workers()
        assert proc.pid is not None
        worker0 = os.path.join(self.spool_dir, "worker-0")
        cases = {
            self.spool_dir: proc.pid,  # the parent holds the top directory
            worker0: next(p for p in children(proc.pid) if b"worker-0" in _cmdline(p)),
        }
        for directory, holder in cases.items():
            other = TwistdTrack(["--dsn", self.db.dsn("track"), "--http", faultcase.ANY_PORT,
                                 "--spool-dir", directory], self.cwd)
            self.procs.append(other)
            reason: Any = await exited(other)
            self.assertEqual(reason.exitCode, 1)
            self.assertEqual(other.output.decode().strip(),
                             f"track: spool directory {directory} is in use by process {holder}")

    async def test_a_restart_on_an_address_in_use_exits_with_one_line(self) -> None:
        await self.start_track()
        for extra in ((), ("--workers", "2")):
            other = TwistdTrack(["--dsn", self.db.dsn("track"), "--http", f"127.0.0.1:{self.port}",
                                 "--spool-dir", os.path.join(self.cwd, f"other-{len(extra)}"), *extra], self.cwd)
            self.procs.append(other)
            reason: Any = await exited(other)
            self.assertEqual(reason.exitCode, 1)
            self.assertEqual(other.output.decode().strip(),
                             f"track: cannot listen on 127.0.0.1:{self.port}: Address already in use")

    async def test_start_while_the_database_accepts_and_never_answers(self) -> None:
        """mariadbd stopped (SIGSTOP) before start: its kernel still accepts
        connections, nobody answers.  track listens within connect_timeout
        + 5 s, acknowledges from the spool, and once the server is continued
        migrates and stores every event once."""
        frozen = self.mariadbd_pid()
        os.kill(frozen, signal.SIGSTOP)
        self.addCleanup(os.kill, frozen, signal.SIGCONT)  # whatever happens, so the harness can stop it
        began = reactor.seconds()
        await self.start_track(dsn=self.db.dsn("track") + f"?connect_timeout={CONNECT_TIMEOUT}")
        took = reactor.seconds() - began
        print(f"\nlistening {took:.1f}s after start, the database frozen")
        self.assertLess(took, CONNECT_TIMEOUT + 5)
        self.assertEqual(len(self.output_lines((b"unreachable at start",))), 1)
        body = await self.health()
        self.assertEqual((body["status"], body["database"]), ("ok", "down"))
        load = self.load()
        await load.wait_for_acks(100)
        self.assertTrue(spool_segments(self.spool_dir))
        os.kill(frozen, signal.SIGCONT)
        await wait_until(self.drained, "migration and replay once the database answers")
        await load.wait_for_acks(len(load.acked) + 50)
        await load.stop()
        self.check_stored_once(load, allow={201})
        versions = self.db.execute("SELECT Version FROM TrackSchemaVersion ORDER BY Version", database="track")
        self.assertEqual(versions, [(1,), (2,), (3,)])
        self.assert_no_traceback()


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""

