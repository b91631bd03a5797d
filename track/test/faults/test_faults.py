"""Fault tests: crashes, database outages, a full spool, a start while the
database is down, and a torn spool tail; a batch during an outage, the
column limits saved for a start without a database, the log lines an outage
costs, and each worker's own spool.

Each runs `twistd -n track` against a private mariadbd (never the shared
server) and clients posting events with unique MessageIDs, retrying a 503
with the same MessageID as a real client would.  Each asserts that every
acknowledged event is stored, none twice, and that clients saw only 201 and
503 (and, while twistd is being killed, refused connections).
"""

from __future__ import annotations

import json
import os
from typing import Any

from track.test import faultcase
from track.test.faultcase import TABLE, sleep, spool_segments, wait_until

OUTAGE_SECONDS = 3.0  # the length of the outage in the log-line test
FLAP_LINES = (b"database unavailable", b"database is back")
MAX_OUTAGE_LINES = 15


class FaultTests(faultcase.FaultCase):
    """The harness (a private mariadbd, twistd on a port of its own, the
    load, the checks) is faultcase.FaultCase, shared with test_disk_faults;
    it is reached through its module so that trial finds no second class
    here."""

    async def test_kill_9_three_times_under_load_then_restart(self) -> None:
        await self.start_track()
        load = self.load(tolerate_refused=True)
        for round_ in range(3):
            await load.wait_for_acks(len(load.acked) + 150)
            if round_ == 2:
                await self.stop_db()  # the last crash hits events acknowledged from the spool
                await load.wait_for_acks(len(load.acked) + 100)
            await self.kill_track()
            if round_ == 2:
                await self.start_db()
            await self.start_track()
        await load.wait_for_acks(len(load.acked) + 100)
        await load.stop()
        await wait_until(self.drained, "the spool to be replayed")
        self.check_stored_once(load)

    async def test_database_stopped_for_seconds_under_load(self) -> None:
        await self.start_track()
        load = self.load()
        await load.wait_for_acks(200)
        await self.stop_db()
        during = len(load.acked)
        await sleep(3)
        body = await self.health()
        self.assertEqual(body["database"], "down")
        self.assertGreater(len(load.acked), during + 50, "no events acknowledged from the spool")
        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        await load.wait_for_acks(len(load.acked) + 100)
        await load.stop()
        self.check_stored_once(load, allow={201})

    async def test_a_full_spool_answers_503_until_the_database_returns(self) -> None:
        await self.start_track("--spool-max-bytes", "30000")
        await self.stop_db()
        load = self.load()
        await wait_until(lambda: load.statuses[503] > 20, "503s from a full spool")
        code = await self.readyz()
        self.assertEqual(code, 503)
        body = await self.health()
        self.assertLessEqual(body["spool"]["bytes"], 30000)
        self.assertGreater(body["spool"]["events"], 50)
        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        code = await self.readyz()
        self.assertEqual(code, 200)
        await load.wait_for_acks(len(load.acked) + 50)
        await load.stop()
        self.check_stored_once(load)

    async def test_start_while_the_database_is_down(self) -> None:
        await self.stop_db()
        await self.start_track()
        body = await self.health()
        self.assertEqual((body["status"], body["database"]), ("ok", "down"))
        load = self.load()
        await load.wait_for_acks(100)
        await self.start_db()
        await wait_until(self.drained, "migration and replay once the database appears")
        await load.wait_for_acks(len(load.acked) + 50)
        await load.stop()
        self.check_stored_once(load, allow={201})
        versions = self.db.execute("SELECT Version FROM TrackSchemaVersion ORDER BY Version", database="track")
        self.assertEqual(versions, [(1,), (2,), (3,)])

    async def test_a_torn_spool_tail_is_skipped_and_the_rest_replayed(self) -> None:
        await self.stop_db()
        await self.start_track()
        load = self.load()
        await load.wait_for_acks(120)
        await load.stop()
        await self.kill_track()
        (segment,) = spool_segments(self.spool_dir)
        with open(segment, "ab") as f:
            f.write(b"\x00\x00\x01\x00\xde\xad\xbe\xef" + b'["session",["eu","torn')  # cut short
        await self.start_db()
        await self.start_track()
        await wait_until(self.drained, "the spool to be replayed")
        self.assertIn(b"torn record", self.proc.output)  # type: ignore[union-attr]
        self.check_stored_once(load, allow={201})
        stored = self.db.execute(f"SELECT COUNT(*) FROM {TABLE}", database="track")[0][0]
        self.assertEqual(stored, len(set(load.acked)))

    # -- issue 15: promises of the README checked end to end --------------------------

    async def test_a_batch_during_an_outage_is_spooled_then_stored(self) -> None:
        """A batch posted while the database is down is one spool append:
        201 with every MessageID (not 503), the spool grows by exactly the
        batch at once, and the replay stores each event once with the values
        posted.  The first batch is the write that finds the outage; the
        second goes to the spool directly."""
        await self.start_track()
        await self.stop_db()
        spooled = (await self.health())["spool"]["events"]
        self.assertEqual(spooled, 0)
        posted: dict[str, tuple[Any, ...]] = {}
        for b in range(2):
            events = [{"type": "session", "Region": "eu", "SessionID": f"sb{b}-{i}",
                       "RemoteIP": f"198.51.100.{i + 1}", "SessionType": "outage-batch",
                       "Message": f"spooled \u00fc {b}-{i}", "ProfileID": 1000 * b + i,
                       "MessageID": f"outage-batch-{b}-{i:02d}"} for i in range(20)]
            ids = [e["MessageID"] for e in events]
            code, _, content = await self.post("/api/1.0/track/batch/", json.dumps({"events": events}).encode(),
                                               "application/json")
            self.assertEqual(code, 201, f"batch {b} during the outage: {code} {content[:500]!r}")
            self.assertEqual(json.loads(content), {"stored": 20, "message_ids": ids})
            body = await self.health()
            print(f"\n/healthz after batch {b}: {body}")
            self.assertEqual(body["database"], "down")
            self.assertEqual(body["spool"]["events"], spooled + 20, "the spool must grow by the batch at once")
            spooled += 20
            for e in events:
                posted[str(e["MessageID"])] = (e["Region"], e["SessionID"], e["RemoteIP"], e["SessionType"],
                                               e["Message"], e["ProfileID"])

        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        rows = self.db.execute(f"SELECT MessageID, Region, SessionID, RemoteIP, SessionType, Message, ProfileID "
                               f"FROM {TABLE} ORDER BY MessageID", database="track")
        self.assertEqual({m: tuple(rest) for m, *rest in rows}, posted)
        self.assertEqual(len(rows), len(posted), "an event stored twice")
        self.assertEqual(self.dead_letter_ids(), [])

    async def test_a_start_while_the_database_is_down_validates_against_the_saved_limits(self) -> None:
        """The column limits track saw last (saved beside the spool) are the
        ones it validates with while it starts without a database: a value
        the real, wider column takes is acknowledged (not refused against
        the original schema's 32), one past the real limit is still a 400,
        and the replay stores the value whole."""
        await self.start_track()  # creates the tables, SessionType varchar(32)
        self.db.execute(f"ALTER TABLE {TABLE} MODIFY SessionType varchar(64) NOT NULL", database="track")
        await self.stop_track()
        await self.start_track()  # reads the real limits and saves them
        with open(os.path.join(self.spool_dir, "column-limits.json")) as f:
            saved = json.load(f)
        print(f"\nsaved column limits: {saved}")
        (session_type,) = [kind["SessionType"] for kind in saved.values() if "SessionType" in kind]
        self.assertEqual(session_type[0], 64)
        await self.stop_track()
        await self.stop_db()

        await self.start_track()  # the database is down
        body = await self.health()
        self.assertEqual(body["database"], "down")
        wide = "w" * 50
        form = "Region=eu&SessionID=wide&RemoteIP=10.0.0.1&SessionType={}&MessageID={}"
        code, _, content = await self.post("/api/1.0/track/session/", form.format(wide, "wide-50").encode(),
                                           "application/x-www-form-urlencoded")
        self.assertEqual(code, 201, f"a 50-character SessionType against the saved 64: {code} {content!r}")
        code, _, content = await self.post("/api/1.0/track/session/", form.format("w" * 65, "wide-65").encode(),
                                           "application/x-www-form-urlencoded")
        self.assertEqual(code, 400, f"a 65-character SessionType against the saved 64: {code} {content!r}")
        self.assertIn(b"SessionType", content)

        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        rows = self.db.execute(f"SELECT MessageID, SessionType FROM {TABLE}", database="track")
        self.assertEqual(rows, [("wide-50", wide)])
        self.assertEqual(self.dead_letter_ids(), [])

    async def test_an_outage_costs_a_bounded_number_of_log_lines(self) -> None:
        """A database stopped for a few seconds under load: one line when it
        goes, one when it is back, and only a handful in all (the probe backs
        off and logs its failures at debug level)."""
        await self.start_track()
        assert self.proc is not None
        load = self.load()
        await load.wait_for_acks(200)
        mark = len(self.proc.output)
        await self.stop_db()
        await sleep(OUTAGE_SECONDS)  # the length of the fault under test, not a wait to settle
        body = await self.health()
        self.assertEqual(body["database"], "down")
        await self.start_db()
        await wait_until(self.drained, "the spool to be replayed")
        lines = self.proc.output[mark:].splitlines()
        gone = [line for line in lines if FLAP_LINES[0] in line]
        back = [line for line in lines if FLAP_LINES[1] in line]
        await load.wait_for_acks(len(load.acked) + 100)
        await load.stop()
        shown = "\n  ".join(line.decode(errors="replace") for line in lines)
        report = (f"{len(lines)} lines between the stop and the drain ({len(gone)} 'database unavailable', "
                  f"{len(back)} 'database is back'):\n  {shown}")
        print(f"\n{report}")
        self.assertEqual(len(gone), 1, report)
        self.assertEqual(len(back), 1, report)
        self.assertLessEqual(len(lines), MAX_OUTAGE_LINES, report)
        self.assert_no_traceback()
        self.check_stored_once(load, allow={201}, outage_log_lines=len(lines))

    async def test_each_worker_spools_in_its_own_directory(self) -> None:
        """With --workers 2 and the database down, each worker acknowledges
        from a spool of its own (<spool-dir>/worker-N); once the database is
        back each replays its own, and every acknowledged event is stored
        once."""
        base = await self.start_track("--workers", "2")
        assert self.proc is not None
        proc = self.proc
        self.assertIn(f"track listening on {base} with 2 workers".encode(), proc.output)
        await wait_until(lambda: proc.output.count(b"track listening on") >= 3, "both workers to listen")
        dirs = [os.path.join(self.spool_dir, f"worker-{n}") for n in range(2)]

        await self.stop_db()
        # A new connection for every request: the kernel gives each to
        # whichever worker accepts first, so both get some.
        load = self.load(persistent=False, clients=16)
        await wait_until(lambda: all(spool_segments(d) for d in dirs), "a spool segment in each worker's directory")
        held = {os.path.basename(d): {os.path.basename(p): os.path.getsize(p) for p in spool_segments(d)}
                for d in dirs}
        print(f"\nspool segments (bytes) while the database is down: {held}")
        # The admin listener's /healthz (the parent's, from the workers'
        # reports, written twice a second): down once both have reported it.
        async def reported_down() -> bool:
            body = await self.health()
            return bool(body["database"] == "down")

        await wait_until(reported_down, "the workers to report the database down")
        for _ in range(4):
            body = await self.health()
            self.assertEqual((body["status"], body["database"]), ("ok", "down"), body)
            self.assertGreater(body["spool"]["events"], 0, body)
        await load.wait_for_acks(len(load.acked) + 50)

        await self.start_db()
        await wait_until(lambda: not any(spool_segments(d) for d in dirs), "both workers' spools to be replayed")
        await load.wait_for_acks(len(load.acked) + 100)
        await load.stop()
        await wait_until(lambda: not any(spool_segments(d) for d in dirs), "both spools empty after the load")
        acked = {(TABLE, m) for m in load.acked}
        await wait_until(lambda: acked <= set(self.stored_counts()), "every acknowledged event stored")
        self.assertEqual(sorted(n for n in os.listdir(self.spool_dir) if n.startswith("worker-")),
                         ["worker-0", "worker-1"])
        self.assert_no_traceback()
        self.check_stored_once(load, allow={201})
