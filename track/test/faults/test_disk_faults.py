"""Disk and database faults beyond an outage: a full spool disk (ENOSPC)
while the database is down, when it returns, and at a restart; and a
read-only database.

Each runs `twistd -n track` against a private mariadbd (never the shared
server) with clients posting session events with unique MessageIDs and
retrying a 503 with the same MessageID, as test_faults does.  The spool's
disk is a small tmpfs the test mounts (and unmounts at cleanup), filled with
a filler file.  Each test ends by checking that every acknowledged event is
in MySQL exactly once, and prints its figures.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from typing import Any

from twisted.internet.threads import deferToThread

from track.test import faultcase
from track.test.faultcase import TABLE, sleep, wait_until

DISK_SIZE = "2m"
LEAVE_FREE = 256 * 1024  # what the filler leaves of the tmpfs
ATTEMPTS = 20  # bound on the requests made while waiting for a full disk's 503
READ_ONLY_SECONDS = 3.0
FLAP_LINES = (b"database unavailable", b"database is back")

# One event of each other kind, as forms (the load posts sessions).
OTHER_KINDS = {
    "user": ("UserEvent", "ProfileID=7&Region=eu"),
    "item": ("ItemEvent", "ProfileID=7&Region=eu&ItemName=axe&ItemType=w&IsUGC=true"),
    "purchase": ("PurchaseEvent", ("ProfileID=7&Region=eu&Currency=EUR&GrossAmount=9.99&NetAmount=8.5"
                                   "&PaymentProvider=card&Product=gems")),
}


def free_bytes(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def write_filler(path: str, size: int) -> None:
    """A file of `size` zero bytes, fsync'd."""
    chunk = b"\0" * 65536
    with open(path, "wb") as f:
        left = size
        while left > 0:
            left -= f.write(chunk[: min(left, len(chunk))])
        f.flush()
        os.fsync(f.fileno())


def fill_completely(path: str, limit: int = 64 * 1024**2) -> int:
    """Append zeros to `path` until the disk says ENOSPC, in ever smaller
    pieces so no byte is left; how many bytes were written (at most `limit`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    written = 0
    try:
        for piece in (65536, 4096, 512, 1):
            data = b"\0" * piece
            while written < limit:
                try:
                    written += os.write(fd, data)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


class DiskFaultTests(faultcase.FaultCase):
    """The harness is faultcase.FaultCase, shared with test_faults (reached
    through its module, so that trial finds no second class here); this adds
    the spool's own small disk."""

    def setUp(self) -> None:
        super().setUp()
        self.disk: str | None = None

    # -- the spool's disk ----------------------------------------------------------

    def mount_disk(self) -> str:
        """A tmpfs of DISK_SIZE, unmounted at cleanup; the spool goes in it.
        Mount before starting track, so track is stopped before the unmount."""
        disk: str = os.path.abspath(self.mktemp())
        os.makedirs(disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", disk], check=True,
                       timeout=30)
        self.addCleanup(self._unmount, disk)
        self.disk = disk
        self.spool_dir = self.spool_arg = os.path.join(disk, "spool")
        return disk

    @staticmethod
    def _unmount(disk: str) -> None:
        if subprocess.run(["umount", disk], check=False, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", disk], check=True, timeout=30)

    def filler(self) -> str:
        assert self.disk is not None
        return os.path.join(self.disk, "filler")

    # -- asking track --------------------------------------------------------------

    async def ready_is(self, code: int) -> bool:
        got = await self.readyz()
        return got == code

    async def spool_writable(self) -> bool:
        body = await self.health()
        return body["spool"]["writable"] is True

    async def every_endpoint_answers_503(self) -> dict[str, list[int]]:
        """POST to the batch endpoint and to the three other kinds' endpoints
        until each answers 503 (bounded: the last page a segment holds may
        still take an event or two, and then its 201 is on disk and counted);
        each answer must be 201 or 503, and each 503 carry Retry-After."""
        answers: dict[str, list[int]] = {}
        for name in ["batch", *OTHER_KINDS]:
            answers[name] = []
            for attempt in range(ATTEMPTS):
                if name == "batch":
                    ids = [f"batch-{attempt}-{i}" for i in range(20)]
                    events = [{"type": "session", "Region": "eu", "SessionID": m, "RemoteIP": "10.0.0.1",
                               "SessionType": "batch", "MessageID": m} for m in ids]
                    body = json.dumps({"events": events}).encode()
                    tables = [TABLE] * len(ids)
                    code, retry_after, content = await self.post(
                        "/api/1.0/track/batch/", body, "application/json")
                else:
                    table, form = OTHER_KINDS[name]
                    ids = [f"{name}-{attempt}"]
                    tables = [table]
                    code, retry_after, content = await self.post(
                        f"/api/1.0/track/{name}/", f"{form}&MessageID={ids[0]}".encode(),
                        "application/x-www-form-urlencoded")
                answers[name].append(code)
                self.assertIn(code, (201, 503), f"{name}: {code} {content[:300]!r}")
                if code == 201:
                    self.extra_acked += zip(tables, ids, strict=True)
                    continue
                self.assertTrue(retry_after, f"{name}: a 503 without Retry-After")
                break
            self.assertEqual(answers[name][-1], 503, f"{name}: no 503 in {ATTEMPTS} requests: {answers[name]}")
        print(f"\nanswers while the spool disk is full: {answers}")
        return answers

    # -- the tests -------------------------------------------------------------------

    async def _fill_the_spool_disk_while_the_database_is_down(self) -> faultcase.Load:
        """Mount, fill to LEAVE_FREE, start track, stop the database, and run
        the load until the spool's disk refuses it (503s); the load."""
        disk = self.mount_disk()
        await self.start_track()
        await deferToThread(write_filler, self.filler(), free_bytes(disk) - LEAVE_FREE)
        await self.stop_db()
        load = self.load()
        await wait_until(lambda: load.statuses[503] > 20, "503s from a full spool disk")
        self.assertGreater(len(load.acked), 0, "nothing acknowledged from the spool before the disk filled")
        print(f"\nspool disk full after {len(load.acked)} events from the spool "
              f"({free_bytes(disk)} bytes free)")
        return load

    async def assert_full_and_not_ready(self) -> Any:
        code = await self.readyz()
        self.assertEqual(code, 503, "/readyz while the spool disk is full and the database down")
        body = await self.health()
        print(f"/healthz while full: {body}")
        self.assertEqual(body["database"], "down")
        self.assertIs(body["spool"]["writable"], False)
        self.assertTrue(body["spool"].get("error"), "an unwritable spool says why")
        self.assertGreater(body["spool"]["events"], 0)
        return body

    async def test_a_full_spool_disk_answers_503_and_recovers_while_the_database_is_down(self) -> None:
        load = await self._fill_the_spool_disk_while_the_database_is_down()
        answers = await self.every_endpoint_answers_503()
        await self.assert_full_and_not_ready()

        os.unlink(self.filler())  # space comes back; the database stays down
        freed = time.monotonic()
        await wait_until(lambda: self.ready_is(200), "/readyz 200 once the spool's disk has room again")
        recovered_in = time.monotonic() - freed
        before = len(load.acked)
        await load.wait_for_acks(before + 50)
        body = await self.health()
        self.assertEqual(body["database"], "down", "the new 201s must have come from the spool")
        self.assertIs(body["spool"]["writable"], True)
        self.assertNotIn("error", body["spool"])

        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        await load.wait_for_acks(len(load.acked) + 50)
        await load.stop()
        self.assert_no_traceback()
        self.check_stored_once(load, recovered_in_s=round(recovered_in, 2),
                               acked_after_space_returned=len(load.acked) - before,
                               answers_while_full=answers)

    async def test_a_spool_disk_full_when_the_database_returns_is_replayed(self) -> None:
        load = await self._fill_the_spool_disk_while_the_database_is_down()
        await self.assert_full_and_not_ready()
        spooled = (await self.health())["spool"]["events"]

        await self.start_db()  # the filler stays: only the replay frees space
        await wait_until(self.drained, "the spool to be replayed while its disk is full")
        code = await self.readyz()
        self.assertEqual(code, 200)
        before = len(load.acked)
        await load.wait_for_acks(before + 50)
        await wait_until(self.spool_writable, "the spool to find room again after the replay")
        await load.stop()
        self.assert_no_traceback()
        self.check_stored_once(load, spooled_when_the_database_returned=spooled)

    async def test_a_restart_with_the_spool_disk_full_serves_and_replays(self) -> None:
        disk = self.mount_disk()
        await self.start_track()
        await self.stop_db()
        load = self.load(tolerate_refused=True)
        await load.wait_for_acks(150)  # from the spool
        body = await self.health()
        self.assertEqual(body["database"], "down")
        self.assertGreaterEqual(body["spool"]["events"], 150)
        await self.kill_track()
        spooled = len(load.acked)
        filled = await deferToThread(fill_completely, self.filler())
        self.assertEqual(free_bytes(disk), 0)
        await self.start_db()

        await self.start_track()  # fails the test if it exits before listening
        assert self.proc is not None
        body = await self.health()
        print(f"\n/healthz after the restart: {body}")
        self.assertEqual(body["database"], "up")
        before = len(load.acked)
        await load.wait_for_acks(before + 100)
        fresh = load.acked[before:before + 100]
        stored = {m for (m,) in self.db.execute(
            f"SELECT MessageID FROM {TABLE} WHERE MessageID IN ({', '.join(['%s'] * len(fresh))})",
            fresh, database="track")}
        self.assertEqual(set(fresh) - stored, set(), "201s after the restart not (yet) in the database")
        await wait_until(self.drained, "the spool to be replayed")
        await load.stop()

        self.assertNotIn(b"Traceback", self.proc.output, self.proc.output.decode(errors="replace")[-6000:])
        warnings = self.output_lines((b"No space", b"ENOSPC", b"could not"))
        print("twistd lines about the full disk after the restart:\n  "
              + "\n  ".join(w.decode(errors="replace") for w in warnings))
        self.check_stored_once(load, spooled_before_the_kill=spooled, filler_top_up_bytes=filled,
                               disk_warning_lines=len(warnings))

    async def test_start_while_the_database_is_read_only(self) -> None:
        """A server read-only at start (a switchover, a replica being
        promoted) is an outage, not a fatal error: track starts on its
        spool and stores everything once the server takes writes."""
        self.db.execute("CREATE USER 'track'@'127.0.0.1' IDENTIFIED BY 'pw'")
        self.db.execute("GRANT ALL ON track.* TO 'track'@'127.0.0.1'")
        self.db.execute("SET GLOBAL read_only=1")
        self.addCleanup(self.db.execute, "SET GLOBAL read_only=0")
        await self.start_track(dsn=f"mysql://track:pw@127.0.0.1:{self.db.port}/track")
        load = self.load()
        await load.wait_for_acks(50)
        self.assertEqual((await self.health())["database"], "down")
        await deferToThread(self.db.execute, "SET GLOBAL read_only=0")
        await wait_until(self.drained, "the spool to be replayed once the database is writable")
        await load.wait_for_acks(len(load.acked) + 50)
        await load.stop()
        self.assert_no_traceback()
        self.check_stored_once(load, allow={201})

    async def test_a_read_only_database_for_3_seconds_under_load_loses_nothing_and_does_not_flap(self) -> None:
        # root has SUPER and ignores read_only: track must log in as a plain user.
        self.db.execute("CREATE USER 'track'@'127.0.0.1' IDENTIFIED BY 'pw'")
        self.db.execute("GRANT ALL ON track.* TO 'track'@'127.0.0.1'")
        await self.start_track(dsn=f"mysql://track:pw@127.0.0.1:{self.db.port}/track")
        assert self.proc is not None
        load = self.load()
        await load.wait_for_acks(200)

        mark = len(self.proc.output)
        acked_before, statuses_before = len(load.acked), dict(load.statuses)
        await deferToThread(self.db.execute, "SET GLOBAL read_only=1")
        self.addCleanup(self.db.execute, "SET GLOBAL read_only=0")  # harmless if already off
        await sleep(READ_ONLY_SECONDS)  # the length of the fault under test, not a wait to settle
        body = await self.health()
        print(f"\n/healthz after {READ_ONLY_SECONDS:g}s read-only: {body}")
        acked_during = len(load.acked) - acked_before
        statuses_during = {code: n - statuses_before.get(code, 0) for code, n in load.statuses.items()}
        await deferToThread(self.db.execute, "SET GLOBAL read_only=0")

        self.assertEqual(body["database"], "down", "a read-only database cannot take writes")
        await wait_until(self.drained, "the spool to be replayed once the database is writable")
        await load.wait_for_acks(len(load.acked) + 100)
        await load.stop()
        lines = self.output_lines(FLAP_LINES, mark)
        print(f"'database unavailable' + 'database is back' lines: {len(lines)}\n  "
              + "\n  ".join(line.decode(errors="replace") for line in lines))
        self.assert_no_traceback()
        self.check_stored_once(load, acked_while_read_only=acked_during,
                               statuses_while_read_only=statuses_during, flap_lines=len(lines))
        self.assertGreater(sum(statuses_during.values()), 0, "no requests answered while read-only")
        self.assertLessEqual(len(lines), 4, "the database state flapped while read-only")
