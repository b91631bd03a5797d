"""Load harness: track against MariaDB beside a bare Klein route, same run.

Posts single session events over keep-alive connections with wrk (Debian
package `wrk`) and prints one table: rate, p50/p99 latency, peak RSS, rows
stored, and track's rate as a ratio of the floor measured in the same run.
Rounds alternate floor and track so drift on a shared machine hits both.

    python test/bench.py --dsn mysql://root@127.0.0.1:3306/track_bench

The database named by --dsn is used for SessionEvent rows and is emptied
(TRUNCATE SessionEvent) before each round: point it at a throwaway one.
Every run is bounded by --duration; nothing here is a unit test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from track.dialects import dialect_for  # noqa: E402
from track.dsn import parse_dsn  # noqa: E402

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
START_TIMEOUT = 60.0


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    rss_mb: float
    rows: int | None = None
    acked: int | None = None


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return env


def wait_for(pattern: str, path: str, proc: subprocess.Popen[bytes]) -> re.Match[str]:
    """Wait (bounded) until the server's output file shows `pattern`."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early; see {path}")
        time.sleep(0.05)
    raise RuntimeError(f"server did not start within {START_TIMEOUT}s; see {path}")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_wrk(port: int, duration: int, connections: int, threads: int) -> dict[str, int]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", os.path.join(HERE, "session.lua"), f"http://127.0.0.1:{port}"],
        check=True, capture_output=True, text=True, timeout=duration + 60,
    ).stdout
    stats = json.loads(out.split("WRKJSON ", 1)[1].splitlines()[0])
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    stats["non_2xx"] = int(m.group(1)) if m else 0
    return stats


def to_result(name: str, stats: dict[str, int], rss: float) -> Result:
    errors = sum(v for k, v in stats.items() if k.startswith("errors_") and k != "errors_status")
    return Result(
        name=name,
        rps=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        non_2xx=stats["non_2xx"],
        socket_errors=errors,
        rss_mb=rss,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_floor(args: argparse.Namespace, tmp: str) -> Result:
    log = os.path.join(tmp, "floor.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bare_klein.py"), "0"],
                                stdout=out, stderr=subprocess.STDOUT, env=child_env())
    try:
        port = int(wait_for(r"listening on (\d+)", log, proc).group(1))
        stats = run_wrk(port, args.duration, args.connections, args.threads)
        return to_result("floor: bare Klein 201", stats, peak_rss_mb(proc.pid))
    finally:
        stop(proc)


def count_rows(dsn_text: str, sql: str) -> int:
    dsn = parse_dsn(dsn_text)
    conn = dialect_for(dsn).connect()
    try:
        cur = conn.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        conn.commit()
        return int(rows[0][0]) if rows else 0
    finally:
        conn.close()


def bench_track(args: argparse.Namespace, tmp: str, extra: Sequence[str]) -> Result:
    log = os.path.join(tmp, "track.log")
    argv = [*TWISTD, "-n", "--pidfile=", "--logfile", log, "track",
            "--http", "tcp:0:interface=127.0.0.1", "--dsn", args.dsn, *extra]
    open(log, "w").close()
    proc = subprocess.Popen(argv, cwd=tmp, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        port = int(wait_for(r"track listening on http://[0-9.]+:(\d+)", log, proc).group(1))
        count_rows(args.dsn, "TRUNCATE TABLE SessionEvent")
        stats = run_wrk(port, args.duration, args.connections, args.threads)
        rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    result = to_result("track: session -> MariaDB", stats, rss)
    result.rows = count_rows(args.dsn, "SELECT COUNT(*) FROM SessionEvent")
    result.acked = stats["requests"] - stats["non_2xx"]
    return result


def table(results: list[Result], floor_rps: float) -> str:
    head = (f"{'run':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} "
            f"{'non-2xx':>8} {'sock err':>8} {'rows':>8} {'x floor':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        rows = "" if r.rows is None else str(r.rows)
        lines.append(f"{r.name:<28} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.rss_mb:>7.1f} "
                     f"{r.non_2xx:>8} {r.socket_errors:>8} {rows:>8} {r.rps / floor_rps:>8.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=os.environ.get("TRACK_BENCH_MYSQL_DSN"),
                   help="MySQL DSN of a throwaway database (or set TRACK_BENCH_MYSQL_DSN)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (default 50)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="floor/track pairs, alternated (default 2)")
    p.add_argument("--track-arg", action="append", default=[],
                   help="extra option for twistd track, e.g. --track-arg=--batch-size=100")
    args = p.parse_args(argv)
    if not args.dsn:
        p.error("--dsn (or TRACK_BENCH_MYSQL_DSN) is required")
    if not shutil.which("wrk"):
        p.error("wrk is not installed: apt-get install wrk")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="track-bench-") as tmp:
        for _ in range(args.rounds):
            results.append(bench_floor(args, tmp))
            results.append(bench_track(args, tmp, args.track_arg))
    floor = statistics.median(r.rps for r in results if r.rows is None)
    tracked = [r for r in results if r.rows is not None]
    print(table(results, floor))
    ratio = statistics.median(r.rps for r in tracked) / floor
    print(f"\ntrack / floor (median of {args.rounds} rounds): {ratio:.2f}   "
          f"connections={args.connections} duration={args.duration}s cores={os.cpu_count()}")
    lost = [r for r in tracked if r.rows is not None and r.acked is not None and r.rows < r.acked]
    if lost:
        print("ERROR: fewer rows stored than 201 answers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
