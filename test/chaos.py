"""Chaos run: track under random faults, every 201 checked against the table.

    python test/chaos.py --minutes 3 --schedule workers|spool|clock

A private mariadbd (never the shared server), the collector started as a
supervisor would (restarted on exit with the same arguments, leftovers never
killed by hand), clients retrying each event by MessageID until its 201, and
a nemesis applying the schedule's faults at random:

- workers: `--workers 2`; kill -9 of the parent, kill -9 of one worker,
  mariadbd stopped (SIGSTOP, 2-6 s) or killed (-9) and started again;
- spool: the spool on a 4 MiB tmpfs; the disk filled while the database is
  stopped, mariadbd stopped for longer (3-10 s) or killed, kill -9 of the
  collector soon after the database returns (replay pending or running);
- clock: `--workers 2`; restarts (SIGTERM or kill -9) under a wall clock
  shifted by libfaketime (Debian's `faketime` package: -1 h, +1 h, -5 min or
  the real one), mariadbd stopped.

At the end: one line per check (acknowledged, stored, lost, duplicated by
MessageID and by SessionID, stored without an acknowledgement, dead letters,
statuses, hangs, failed restarts, leftover processes, faults applied,
latency).  Root is needed for the tmpfs.  Bounded: --minutes, at most
chaos_parts.MAX_EVENTS events, 127.0.0.1 only.  Not part of `trial track`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from chaos_parts import (
    FAKETIME_LIB,
    Clients,
    Nemesis,
    Supervisor,
    pause,
    percentile,
    within,
)

from track.test.mariadb import ThrowawayMariaDB, free_port
from track.test.process import TWISTD, alive, child_env, children

TMPFS_SIZE = "4m"
DRAIN_SECONDS = 60.0  # how long clients may keep retrying their last event at the end
REPLAY_SECONDS = 180.0  # how long the spools may take to empty at the end


class Run:
    """One chaos run: its database, collector, clients and faults."""

    def __init__(self, args: argparse.Namespace, work: str) -> None:
        import random

        self.args = args
        self.work = work
        self.rng = random.Random(args.seed + 1)
        self.db = ThrowawayMariaDB(os.path.join(work, "mariadb"))
        self.port = free_port()
        self.spool = os.path.join(work, "spool")
        self.mounted = False
        self.freezes: list[tuple[float, float]] = []  # SIGSTOP windows, for the latency they cost
        self.sup: Supervisor | None = None

    # -- set-up -----------------------------------------------------------------

    def start(self) -> None:
        self.db.install()
        self.db.start()
        self.db.create_database("track")
        os.makedirs(self.spool)
        if self.args.schedule == "spool":
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", self.spool], check=True)
            self.mounted = True
        workers = ["--workers", "2"] if self.args.schedule in ("workers", "clock") else []
        argv = [*TWISTD, "-n", "--pidfile=", "track", "--http", f"127.0.0.1:{self.port}",
                "--dsn", self.db.dsn("track"), "--spool-dir", self.spool, *workers, *self.args.track_arg]
        self.command = "twistd " + " ".join(argv[3:])
        logs = os.path.join(self.work, "logs")
        os.makedirs(logs)
        self.sup = Supervisor(argv, self.work, child_env(), logs)
        self.sup.start()
        deadline = time.monotonic() + 60
        while not self._listening():
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: track did not listen on {self.port}; see {logs}")
            time.sleep(0.1)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    # -- faults -------------------------------------------------------------------

    def faults(self) -> dict[str, Callable[[], None]]:
        schedule = self.args.schedule
        if schedule == "workers":
            return {"kill -9 parent": self.kill_parent, "kill -9 one worker": self.kill_worker,
                    "mariadbd SIGSTOP": self.freeze_db, "mariadbd kill -9": self.kill_db}
        if schedule == "spool":
            return {"spool disk filled": self.fill_disk, "mariadbd SIGSTOP": lambda: self.freeze_db(3, 10),
                    "mariadbd kill -9": self.kill_db, "kill -9 as the database returns": self.kill_at_replay}
        return {"restart (SIGTERM), shifted clock": lambda: self.shift_clock(signal.SIGTERM),
                "restart (kill -9), shifted clock": lambda: self.shift_clock(signal.SIGKILL),
                "mariadbd SIGSTOP": self.freeze_db}

    def collector(self) -> int | None:
        assert self.sup is not None
        return self.sup.pid()

    def kill_parent(self) -> None:
        pid = self.collector()
        if pid:
            os.kill(pid, signal.SIGKILL)

    def kill_worker(self) -> None:
        pid = self.collector()
        workers = children(pid) if pid else []
        if workers:
            os.kill(self.rng.choice(workers), signal.SIGKILL)

    def db_pid(self) -> int:
        with open(self.db.pid_file) as f:
            return int(f.read().strip())

    def freeze_db(self, low: float = 2, high: float = 6) -> None:
        pid = self.db_pid()
        began = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            pause(self.rng, low, high)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.freezes.append((began, time.monotonic()))

    def kill_db(self) -> None:
        self.db.kill()
        pause(self.rng, 1, 4)
        self.db.start()

    def fill_disk(self) -> None:
        """The database stopped, so events go to the spool, then the spool's
        disk filled to the last byte for a few seconds."""
        pid = self.db_pid()
        os.kill(pid, signal.SIGSTOP)
        ballast = os.path.join(self.spool, "ballast")
        try:
            time.sleep(1)
            with open(ballast, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            pause(self.rng, 3, 6)
        finally:
            if os.path.exists(ballast):
                os.unlink(ballast)
            os.kill(pid, signal.SIGCONT)

    def kill_at_replay(self) -> None:
        self.freeze_db(3, 5)
        pause(self.rng, 0.2, 3)
        self.kill_parent()

    def shift_clock(self, sig: signal.Signals) -> None:
        assert self.sup is not None
        self.sup.clock_shift = self.rng.choice(["-1h", "+1h", "-5m", ""])
        pid = self.collector()
        if pid:
            os.kill(pid, sig)

    # -- the end ----------------------------------------------------------------------

    def spooled(self) -> list[str]:
        return glob.glob(os.path.join(self.spool, "*.spool")) + glob.glob(os.path.join(self.spool, "*", "*.spool"))

    def dead_letters(self) -> int:
        count = 0
        for path in glob.glob(os.path.join(self.spool, "**", "dead-letter", "events.jsonl"), recursive=True):
            with open(path, "rb") as f:
                count += sum(1 for line in f if line.strip())
        return count

    def leftovers(self) -> list[int]:
        """Processes still running in the collector's directory."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    if os.readlink(f"/proc/{entry}/cwd") == self.work and alive(int(entry)):
                        found.append(int(entry))
                except OSError:
                    continue
        return found

    def close(self) -> None:
        try:
            os.kill(self.db_pid(), signal.SIGCONT)
        except (OSError, ValueError):
            pass
        self.db.close()
        if self.mounted:
            self.mounted = subprocess.run(["umount", self.spool], check=False).returncode != 0


def report(run: Run, clients: Clients, nemesis: Nemesis, stopped: bool, leftover: list[int],
           minutes: float) -> list[str]:
    tally = clients.tally
    rows = run.db.execute("SELECT MessageID, SessionID FROM SessionEvent", database="track")
    by_mid = Counter(m for m, _ in rows)
    by_sid = Counter(s for _, s in rows)
    acked = {m for m, _ in tally.acked}
    stored = set(by_mid)
    assert run.sup is not None
    all_ms = [s for _, s, _ in tally.latencies]
    frozen = within(run.freezes, tally.latencies)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items()))
    faults = ", ".join(f"{k} x{v}" for k, v in sorted(nemesis.applied.items()))
    return [
        f"schedule                           {run.args.schedule}, {minutes:g} min, seed {run.args.seed}",
        f"acknowledged                       {len(tally.acked)} ({len(acked)} MessageIDs)",
        f"stored                             {len(rows)}",
        f"lost                               {len(acked - stored)}",
        f"duplicated (MessageID)             {sum(1 for n in by_mid.values() if n > 1)}",
        f"duplicated (SessionID)             {sum(1 for n in by_sid.values() if n > 1)}",
        f"stored without an acknowledgement  {len(stored - acked)} (clients gave up on {len(tally.given_up)})",
        f"dead letters                       {run.dead_letters()}",
        f"statuses                           {statuses}",
        f"hangs (no answer in 15 s)          {tally.hangs}",
        f"restarts                           {run.sup.starts - 1} ({run.sup.killed_starting} killed again "
        f"before they listened)",
        f"failed restarts                    {len(run.sup.failed)}" + "".join(f"\n    {f}" for f in run.sup.failed),
        f"collector stopped on SIGTERM       {'yes' if stopped else 'NO'}",
        f"leftover processes at the end      {len(leftover)}",
        f"spool segments left                {len(run.spooled())}",
        f"faults                             {faults}" + "".join(f"\n    error: {e}" for e in nemesis.errors),
        f"latency p50 / p99 / max (ms)       {percentile(all_ms, 50) * 1000:.1f} / "
        f"{percentile(all_ms, 99) * 1000:.1f} / {max(all_ms, default=0) * 1000:.0f}",
        f"while mariadbd SIGSTOPped (ms)     p99 {percentile(frozen, 99) * 1000:.0f}, max "
        f"{max(frozen, default=0) * 1000:.0f}, over {len(frozen)} requests in flight in {len(run.freezes)} stops",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="how long the faults go on (default 3)")
    p.add_argument("--schedule", choices=("workers", "spool", "clock"), required=True)
    p.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    p.add_argument("--seed", type=int, default=25, help="the nemesis's random seed (default 25)")
    p.add_argument("--track-arg", action="append", default=[],
                   help="an extra track option, e.g. --track-arg=--outage-wait=0 (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep the working directory (logs, spool)")
    args = p.parse_args(argv)
    if args.schedule == "clock" and not os.path.exists(FAKETIME_LIB):
        raise SystemExit(f"chaos: the clock schedule needs libfaketime ({FAKETIME_LIB}): apt-get install faketime")
    work = tempfile.mkdtemp(prefix=f"track-chaos-{args.schedule}-")
    run = Run(args, work)
    try:
        run.start()
        print(f"chaos: {args.schedule} for {args.minutes:g} min in {work}\n  {run.command}", flush=True)
        clients = Clients(run.port, args.clients)
        nemesis = Nemesis(run.faults(), args.seed)
        nemesis.start()
        time.sleep(args.minutes * 60)
        nemesis.stopping = True
        nemesis.join(120)
        if not run.db.running:
            run.db.start()
        clients.stop(DRAIN_SECONDS)
        deadline = time.monotonic() + REPLAY_SECONDS
        while run.spooled() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.sup is not None
        stopped = run.sup.stop()
        leftover = run.leftovers()
        for pid in leftover:  # reported above; only now, at the very end, are they ended
            os.kill(pid, signal.SIGKILL)
        lines = report(run, clients, nemesis, stopped, leftover, args.minutes)
        print("\n".join(lines), flush=True)
        with open(os.path.join(work, "report.json"), "w") as f:
            json.dump({"lines": lines, "command": run.command}, f)
    finally:
        run.close()
        if not args.keep and not run.mounted:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
