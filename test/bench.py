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
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from track.storage.dsn import parse_dsn
from track.storage.prepare import prepare_database
from track.test.events.example import ISSUE_EXAMPLE, write_events_file
from track.test.mariadb import free_port
from track.test.process import TWISTD, child_env, children, cpu_seconds, peak_rss_mb
from track.test.support import execute

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
    events_per_request: int = 1
    rows: int | None = None
    acked: int | None = None
    cpu_s: float = 0.0  # server CPU (all its processes) during the timed run
    requests: int = 0

    @property
    def eps(self) -> float:
        return self.rps * self.events_per_request

    @property
    def cpu_us_per_event(self) -> float:
        """Steadier than rates on a shared machine: what one event costs."""
        events = self.requests * self.events_per_request
        return self.cpu_s * 1e6 / events if events else 0.0


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


def wrk(port: int, duration: int, connections: int, threads: int, script: str,
        check: bool = True) -> str:
    """wrk's output; with check=False a failed run (a warm-up) is ignored."""
    return subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", os.path.join(HERE, script), f"http://127.0.0.1:{port}"],
        check=check, capture_output=True, text=True, timeout=duration + 60,
    ).stdout


def run_wrk(port: int, duration: int, connections: int, threads: int,
            script: str = "session.lua") -> dict[str, int]:
    out = wrk(port, duration, connections, threads, script)
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


def serve_and_load(name: str, argv: list[str], pattern: str, args: argparse.Namespace, tmp: str,
                   script: str = "session.lua", connections: int | None = None,
                   events_per_request: int = 1, count: bool = True, tree: str | None = None,
                   watch: str | None = None, table: str = "SessionEvent") -> Result:
    """Start a server, truncate, run wrk against it, stop it, count rows.
    `tree`: run track from that checkout instead of this one.
    `table`: where the events go (truncated before, counted after).
    `watch`: a URL fetched every second during the run, as the live page does."""
    log = os.path.join(tmp, f"{name.split(':')[0].replace(' ', '_')}.log")
    open(log, "w").close()
    env = child_env()
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(tree), env["PYTHONPATH"]])
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    watcher = Watcher(watch) if watch else None
    try:
        port = int(wait_for(pattern, log, proc).group(1))
        if args.warmup:
            # Untimed: pool connections, worker processes and caches all
            # start up here, for every scenario alike.
            wrk(port, args.warmup, connections or args.connections, args.threads, script, check=False)
        if count:
            execute(parse_dsn(args.dsn), f"TRUNCATE TABLE {table}")
        server = [proc.pid, *children(proc.pid)]
        cpu_before = cpu_seconds(server)
        if watcher is not None:
            watcher.start()
        stats = run_wrk(port, args.duration, connections or args.connections, args.threads, script)
        cpu = cpu_seconds(server) - cpu_before
        rss = sum(peak_rss_mb(pid) for pid in [proc.pid, *children(proc.pid)])
    finally:
        if watcher is not None:
            watcher.stop()
        stop(proc)
    result = to_result(name, stats, rss)
    result.events_per_request = events_per_request
    result.cpu_s, result.requests = cpu, stats["requests"]
    if count:
        result.rows = execute(parse_dsn(args.dsn), f"SELECT COUNT(*) FROM {table}")[0][0]
        result.acked = (stats["requests"] - stats["non_2xx"]) * events_per_request
    return result


class Watcher:
    """Fetches a URL every second on a thread (the live page's poll)."""

    def __init__(self, url: str) -> None:
        import threading

        self.url = url
        self.fetched = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from urllib.request import urlopen

        while not self._stop.wait(1.0):
            try:
                with urlopen(self.url, timeout=5) as response:
                    response.read()
                self.fetched += 1
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def admin_args(args: argparse.Namespace) -> tuple[list[str], str]:
    """--admin-http on a free port, and the live page's feed URL there."""
    port = free_port()
    return ["--admin-http", f"127.0.0.1:{port}"], f"http://127.0.0.1:{port}/feed"


def table(results: list[Result], floor_eps: float | None, peer_eps: float | None) -> str:
    head = (f"{'run':<26} {'events/s':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7} "
            f"{'CPU us/ev':>9} {'non-2xx':>7} {'rows':>8} {'x floor':>7} {'x peer':>7}")
    lines = [head, "-" * len(head)]
    for r in results:
        rows = "" if r.rows is None else str(r.rows)
        x_floor = f"{r.eps / floor_eps:.2f}" if floor_eps else "-"
        x_peer = f"{r.eps / peer_eps:.2f}" if peer_eps else "-"
        lines.append(f"{r.name:<26} {r.eps:>9.0f} {r.rps:>8.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
                     f"{r.rss_mb:>7.1f} {r.cpu_us_per_event:>9.1f} {r.non_2xx:>7} {rows:>8} {x_floor:>7} {x_peer:>7}")
    return "\n".join(lines)


def track_argv(args: argparse.Namespace, *extra: str) -> list[str]:
    return [*TWISTD, "-n", "--pidfile=", "track", "--http", args.track_http,
            "--dsn", args.dsn, *args.track_arg, *extra]


def events_args(tmp: str) -> list[str]:
    """--events with issue 22's level_up file (six fields, as many as
    session's form body; one of each rule the subset has that session
    lacks), written to the bench's temp dir."""
    return ["--events", write_events_file(os.path.join(tmp, "level_up.json"), ISSUE_EXAMPLE)]


SCENARIOS = {
    "floor": lambda a, t: serve_and_load(
        "floor: bare Klein 201", [sys.executable, os.path.join(HERE, "bare_klein.py"), "0"],
        r"listening on (\d+)", a, t, count=False),
    "peer": lambda a, t: serve_and_load(
        "peer: FastAPI+aiomysql", [sys.executable, os.path.join(HERE, "peer_fastapi.py"), str(free_port()), a.dsn],
        r"listening on (\d+)", a, t),
    "track": lambda a, t: serve_and_load(
        "track: single events", track_argv(a), r"track listening on http://[0-9.]+:(\d+)", a, t),
    # The same load against an older checkout (--baseline), to compare a
    # change with what it changes in one run: ratios, not absolute rates.
    "base": lambda a, t: serve_and_load(
        "base: --baseline tree", track_argv(a), r"track listening on http://[0-9.]+:(\d+)", a, t,
        tree=a.baseline),
    # --rate-limit on, set far above the load: the limiter's own cost.
    "track-rl": lambda a, t: serve_and_load(
        "track --rate-limit (unhit)", track_argv(a, "--rate-limit", "1000000000"),
        r"track listening on http://[0-9.]+:(\d+)", a, t),
    "track-2w": lambda a, t: serve_and_load(
        "track --workers 2", track_argv(a, "--workers", "2"), r"listening on http://[0-9.]+:(\d+) with", a, t),
    # `base` with --workers 2, to compare track-2w with.
    "track-2w-base": lambda a, t: serve_and_load(
        "baseline --workers 2", track_argv(a, "--workers", "2"), r"listening on http://[0-9.]+:(\d+) with", a, t,
        tree=a.baseline),
    # The admin page on, closed (nobody polls) and open (polled every second).
    "track-admin": lambda a, t: serve_and_load(
        "track: admin, page closed", track_argv(a, *admin_args(a)[0]), r"track listening on http://[0-9.]+:(\d+)",
        a, t),
    "track-watched": lambda a, t: (lambda admin: serve_and_load(
        "track: admin, page open", track_argv(a, *admin[0]), r"track listening on http://[0-9.]+:(\d+)", a, t,
        watch=admin[1]))(admin_args(a)),
    "track-2w-watched": lambda a, t: (lambda admin: serve_and_load(
        "track -w2: page open", track_argv(a, "--workers", "2", *admin[0]),
        r"listening on http://[0-9.]+:(\d+) with", a, t, watch=admin[1]))(admin_args(a)),
    "batch": lambda a, t: serve_and_load(
        "track: batch of 100", track_argv(a), r"track listening on http://[0-9.]+:(\d+)", a, t,
        script="batch.lua", events_per_request=100),
    # The client's batches (NDJSON, MessageIDs, Timestamps) without the client.
    "ndjson": lambda a, t: serve_and_load(
        "track: client's batches", track_argv(a), r"track listening on http://[0-9.]+:(\d+)", a, t,
        script="ndjson.lua", events_per_request=100),
    # `batch` against the --baseline tree, as `base` is `track`'s.
    "batch-base": lambda a, t: serve_and_load(
        "base: batch of 100", track_argv(a), r"track listening on http://[0-9.]+:(\d+)", a, t,
        script="batch.lua", events_per_request=100, tree=a.baseline),
    # Single events of a declared kind (--events, six fields), to compare with `track`'s session.
    "custom": lambda a, t: serve_and_load(
        "custom: level_up, 6 fields", track_argv(a, *events_args(t)), r"track listening on http://[0-9.]+:(\d+)",
        a, t, script="level_up.lua", table="LevelUpEvent"),
    "overload": lambda a, t: serve_and_load(
        "track: 8x connections", track_argv(a), r"track listening on http://[0-9.]+:(\d+)", a, t,
        connections=a.connections * 8),
    "galera": lambda a, t: galera_three(a, t),
}


# Scenarios --paired can run side by side: (twistd track options, old code?, poll the page?).
PAIRABLE: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "base": ((), True, False),
    "track": ((), False, False),
    # level_up (--events, level_up.lua) beside session: a declared kind's rate against session's.
    "custom": (("events",), False, False),
    # Batches of 100 (batch.lua), this code's and the --baseline tree's.
    "batch": (("batch",), False, False),
    "batch-base": (("batch",), True, False),
    "track-admin": (("admin",), False, False),
    "track-watched": (("admin",), False, True),
    # The page of the --baseline tree, open: to compare one page's cost with another's.
    "base-watched": (("admin",), True, True),
}


def paired(names: list[str], args: argparse.Namespace, tmp: str) -> list[tuple[float, float, float, float]]:
    """Two servers loaded at the same time, one wrk each: noise from the
    rest of the machine hits both alike, so their ratio holds even when
    their rates do not.  Per round: events/s of the first and of the
    second, and the CPU µs each spent per event."""
    import threading

    rounds = []
    scripts = ["level_up.lua" if "events" in PAIRABLE[name][0] else "batch.lua" if "batch" in PAIRABLE[name][0]
               else "session.lua" for name in names]
    per_request = [100 if script == "batch.lua" else 1 for script in scripts]  # events in one request
    for _ in range(args.rounds):
        procs, ports, watchers = [], [], []
        try:
            for name in names:
                extra, baseline, watch = PAIRABLE[name]
                admin, feed = admin_args(args) if "admin" in extra else ([], "")
                events = events_args(tmp) if "events" in extra else []
                http = f"127.0.0.1:{free_port()}"
                argv = [*TWISTD, "-n", "--pidfile=", "track", "--http", http, "--dsn", args.dsn,
                        "--spool-dir", os.path.join(tmp, f"spool-{name}"), *args.track_arg, *admin, *events]
                env = child_env()
                if baseline:
                    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(args.baseline), env["PYTHONPATH"]])
                log = os.path.join(tmp, f"paired-{name}.log")
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT))
                ports.append(int(wait_for(r"track listening on http://[0-9.]+:(\d+)", log, procs[-1]).group(1)))
                if watch:
                    watchers.append(Watcher(feed))
            results: dict[int, dict[str, int]] = {}

            def load(i: int, seconds: int, keep: bool, ports: list[int] = ports,
                     results: dict[int, dict[str, int]] = results) -> None:
                if keep:
                    results[i] = run_wrk(ports[i], seconds, args.connections, args.threads, scripts[i])
                else:
                    wrk(ports[i], seconds, args.connections, args.threads, scripts[i], check=False)

            cpu_before: list[float] = []
            for seconds, keep in ((args.warmup, False), (args.duration, True)):
                if keep:
                    cpu_before = [cpu_seconds([p.pid, *children(p.pid)]) for p in procs]
                    for w in watchers:
                        w.start()
                threads = [threading.Thread(target=load, args=(i, seconds, keep)) for i in range(len(ports))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            cpu = [cpu_seconds([p.pid, *children(p.pid)]) - b for p, b in zip(procs, cpu_before, strict=True)]
        finally:
            for w in watchers:
                w.stop()
            for proc in procs:
                stop(proc)
        first, second = (results[i]["requests"] * per_request[i] / (results[i]["duration_us"] / 1e6)
                         for i in range(2))
        us = [cpu[i] * 1e6 / max(results[i]["requests"] * per_request[i], 1) for i in range(2)]
        rounds.append((first, second, us[0], us[1]))
    return rounds


GALERA_DATABASE = "track_bench"
_galera: list[Any] = []  # the one cluster of this run, started by the first galera round


def galera_cluster() -> Any:
    """A 3-node Galera cluster (track/test/galera.py) for this run, started
    once (10-40 s, untimed) and stopped when the bench exits."""
    if not _galera:
        import atexit

        from track.test.galera import GALERA_SKIP, GaleraCluster

        if GALERA_SKIP:
            raise RuntimeError(f"the galera scenario needs a Galera cluster: {GALERA_SKIP}")
        base = tempfile.mkdtemp(prefix="track-bench-galera-")
        os.chmod(base, 0o755)  # the nodes run as mysql
        cluster = GaleraCluster(base)
        atexit.register(shutil.rmtree, base, True)
        atexit.register(cluster.close)  # runs first
        cluster.start()
        cluster.create_database(GALERA_DATABASE)
        if prepare_database(parse_dsn(cluster.dsn(GALERA_DATABASE))) is None:
            raise RuntimeError("cannot reach the Galera cluster")
        _galera.append(cluster)
    return _galera[0]


def galera_three(args: argparse.Namespace, tmp: str) -> Result:
    """Three track instances on a 3-node Galera cluster, each with a
    multi-host DSN preferring its own node, each loaded by its own wrk with a
    third of the connections, all at once.  Rates add up; p50 is the middle
    instance's, p99 the worst; RSS and CPU cover the three twistd processes
    (not the nodes)."""
    cluster = galera_cluster()
    connections = max(1, args.connections // 3)
    procs: list[subprocess.Popen[bytes]] = []
    ports = []
    try:
        for i in range(3):
            port = free_port()
            log = os.path.join(tmp, f"galera-{i}.log")
            argv = [*TWISTD, "-n", "--pidfile=", "track", "--http", f"127.0.0.1:{port}",
                    "--dsn", cluster.dsn(GALERA_DATABASE, prefer=i),
                    "--spool-dir", os.path.join(tmp, f"galera-spool-{i}"), *args.track_arg]
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(argv, cwd=tmp, env=child_env(), stdout=out, stderr=subprocess.STDOUT))
            wait_for(r"track listening on http://[0-9.]+:(\d+)", log, procs[-1])
            ports.append(port)

        def load(duration: int, check: bool) -> list[str]:
            runs = [subprocess.Popen(
                ["wrk", f"-t{args.threads}", f"-c{connections}", f"-d{duration}s", "--latency",
                 "-s", os.path.join(HERE, "session.lua"), f"http://127.0.0.1:{port}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for port in ports]
            outs = [run.communicate(timeout=duration + 60)[0] for run in runs]
            if check and any(run.returncode for run in runs):
                raise RuntimeError("wrk failed against a galera instance")
            return outs

        if args.warmup:
            load(args.warmup, check=False)
        cluster.execute("TRUNCATE TABLE SessionEvent", database=GALERA_DATABASE)
        pids = [pid for proc in procs for pid in (proc.pid, *children(proc.pid))]
        cpu_before = cpu_seconds(pids)
        outs = load(args.duration, check=True)
        cpu = cpu_seconds(pids) - cpu_before
        rss = sum(peak_rss_mb(pid) for pid in pids)
    finally:
        for proc in procs:
            stop(proc)
    stats = []
    for out in outs:
        one = json.loads(out.split("WRKJSON ", 1)[1].splitlines()[0])
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        one["non_2xx"] = int(m.group(1)) if m else 0
        stats.append(one)
    results = [to_result("galera", one, 0.0) for one in stats]
    requests = sum(one["requests"] for one in stats)
    non_2xx = sum(one["non_2xx"] for one in stats)
    p50s = sorted(r.p50_ms for r in results)
    result = Result(name="track x3 on 3-node Galera", rps=sum(r.rps for r in results), p50_ms=p50s[1],
                    p99_ms=max(r.p99_ms for r in results), non_2xx=non_2xx,
                    socket_errors=sum(r.socket_errors for r in results), rss_mb=rss, cpu_s=cpu, requests=requests)
    result.rows = cluster.execute("SELECT COUNT(*) FROM SessionEvent", database=GALERA_DATABASE)[0][0]
    result.acked = requests - non_2xx
    return result

def client_events(client: Any, seconds: float, first: int = 0) -> int:
    """Track session events through `client` for `seconds` (waiting when
    its queue is full), then flush; how many were tracked."""
    from track.client import QueueFull

    end = time.monotonic() + seconds
    n = first
    while time.monotonic() < end:
        try:
            client.track("session", {"Region": "eu", "SessionID": f"c{n}", "RemoteIP": "10.0.0.1",
                                     "SessionType": "bench"})
        except QueueFull:
            client.flush(0.01)
            continue
        n += 1
    if not client.flush(120):
        raise RuntimeError("the client could not flush within 120 s")
    return n - first


def client_load(args: argparse.Namespace, tmp: str) -> Result:
    """One Python process (this one) tracking through track.client.Client
    with its defaults (gzip; batches of 100 unless --client-batch-size) into
    twistd track."""
    from track.client import Client

    log = os.path.join(tmp, "client.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(track_argv(args), cwd=tmp, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        port = int(wait_for(r"track listening on http://[0-9.]+:(\d+)", log, proc).group(1))
        more = {"connections": args.client_connections} if args.client_connections else {}
        client = Client(f"http://127.0.0.1:{port}", batch_size=args.client_batch_size, **more)
        if args.warmup:
            client_events(client, args.warmup, 10**9)
        execute(parse_dsn(args.dsn), "TRUNCATE TABLE SessionEvent")
        server = [proc.pid, *children(proc.pid)]
        cpu_before = cpu_seconds(server)
        started = time.monotonic()
        events = client_events(client, args.duration)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(server) - cpu_before
        client.close()
        rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    rows = execute(parse_dsn(args.dsn), "SELECT COUNT(*) FROM SessionEvent")[0][0]
    return Result(name=f"client: batch_size={args.client_batch_size}", rps=events / elapsed, p50_ms=0.0,
                  p99_ms=0.0, non_2xx=0, socket_errors=0, rss_mb=rss, rows=rows, acked=events, cpu_s=cpu,
                  requests=events)


SCENARIOS["client"] = client_load


def build_spool(directory: str, events: int) -> None:
    """A spool of `events` session events, written by track's own Spool
    code (called synchronously here: the bench is its only thread)."""
    from datetime import datetime

    from track.fields.kinds import KINDS, parse_event
    from track.spool import Spool, encode

    session = KINDS["session"]
    spool = Spool(directory, 1 << 62, None)
    spool.open()
    created = datetime(2026, 11, 29, 12, 0, 0)
    flush = 1000
    for start in range(0, events, flush):
        records = [encode(session, parse_event(session, {
            "Region": "eu", "SessionID": f"s{n}", "RemoteIP": "10.0.0.1", "SessionType": "bench",
            "MessageID": f"spool-{n}"}, "", created)) for n in range(start, min(start + flush, events))]
        spool._write(b"".join(records), len(records))
    spool._seal()


def get_json(url: str) -> dict[str, Any] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except Exception:
        return None


def spool_start_and_replay(args: argparse.Namespace, tmp: str, events: int) -> tuple[float, float]:
    """Seconds from starting twistd to /readyz 200, and replay events/s
    (from then until the spool is empty and every row is in the database)."""
    spool_dir = os.path.join(tmp, f"spool-{events}")
    shutil.rmtree(spool_dir, ignore_errors=True)
    if events:
        build_spool(spool_dir, events)
    execute(parse_dsn(args.dsn), "TRUNCATE TABLE SessionEvent")
    log = os.path.join(tmp, f"spool-{events}.log")
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(track_argv(args, "--spool-dir", spool_dir),
                                cwd=tmp, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://{args.track_http}"
    try:
        deadline = started + START_TIMEOUT
        while get_json(base + "/readyz") != {"ready": True}:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"track did not get ready; see {log}")
            time.sleep(0.01)
        ready = time.monotonic() - started
        replay_start = time.monotonic()
        deadline = replay_start + 600
        while True:
            health = get_json(base + "/healthz")
            if health and health["spool"]["events"] == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"replay did not finish in 600 s; see {log}")
            time.sleep(0.05)
        replayed = time.monotonic() - replay_start
    finally:
        stop(proc)
    rows = execute(parse_dsn(args.dsn), "SELECT COUNT(*) FROM SessionEvent")[0][0]
    if rows != events:
        raise RuntimeError(f"replay stored {rows} of {events} spooled events; see {log}")
    return ready, (events / replayed if events else 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=os.environ.get("TRACK_BENCH_MYSQL_DSN"),
                   help="MySQL DSN of a throwaway database (or set TRACK_BENCH_MYSQL_DSN)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed seconds of load before each run (default 2)")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (default 50)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of all scenarios, alternated (default 2)")
    p.add_argument("--scenarios", default="floor,track",
                   help=f"comma-separated, from: {', '.join(SCENARIOS)} (default floor,track)")
    p.add_argument("--spool-events", type=int, default=1_000_000,
                   help="events in the spool of the 'spool' scenario (default 1000000)")
    p.add_argument("--client-batch-size", type=int, default=100,
                   help="batch_size of the Client in the 'client' scenario (default 100, the Client's)")
    p.add_argument("--client-connections", type=int, default=None,
                   help="connections of the Client in the 'client' scenario (default: the Client's)")
    p.add_argument("--baseline", default=None,
                   help="another checkout of track (e.g. `git archive main | tar -x -C DIR`) for the `base`, "
                        "`track-2w-base` and `batch-base` scenarios and --paired, to compare against in the same run")
    p.add_argument("--paired", default=None,
                   help=f"A,B: instead of --scenarios, run two of {', '.join(PAIRABLE)} side by side "
                        "(each with its own wrk, at the same time) and print B's rate as a ratio of A's")
    p.add_argument("--track-arg", action="append", default=[],
                   help="extra option for twistd track, e.g. --track-arg=--batch-size=100")
    args = p.parse_args(argv)
    if not args.dsn:
        p.error("--dsn (or TRACK_BENCH_MYSQL_DSN) is required")
    if not shutil.which("wrk"):
        p.error("wrk is not installed: apt-get install wrk")
    if args.paired:
        pair = [n.strip() for n in args.paired.split(",")]
        if len(pair) != 2 or any(n not in PAIRABLE for n in pair):
            p.error(f"--paired takes two of {', '.join(PAIRABLE)}")
        if any(n.startswith("base") for n in pair) and not args.baseline:
            p.error("base needs --baseline")
        prepare_database(parse_dsn(args.dsn))
        with tempfile.TemporaryDirectory(prefix="track-bench-") as tmp:
            rounds = paired(pair, args, tmp)
        ratios = sorted(b / a for a, b, _, _ in rounds)
        cpu = sorted(cb / ca for _, _, ca, cb in rounds)
        print(f"{pair[1]} / {pair[0]}, side by side: events/s median {ratios[len(ratios) // 2]:.3f} "
              f"over {len(rounds)} rounds "
              f"(each: {', '.join(f'{b:.0f}/{a:.0f}={b / a:.3f}' for a, b, _, _ in rounds)}); "
              f"CPU us/event median {cpu[len(cpu) // 2]:.3f} "
              f"(each: {', '.join(f'{cb:.0f}/{ca:.0f}={cb / ca:.3f}' for _, _, ca, cb in rounds)})")
        return 0
    names = [n.strip() for n in args.scenarios.split(",")]
    spool_runs = "spool" in names
    names = [n for n in names if n != "spool"]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}")
    if any(n in ("base", "track-2w-base", "batch-base") for n in names) and not args.baseline:
        p.error("the base, track-2w-base and batch-base scenarios need --baseline DIR")
    # The peer and the row counts need the tables before track first runs.
    if prepare_database(parse_dsn(args.dsn)) is None:
        p.error(f"cannot reach the database of --dsn {parse_dsn(args.dsn).redacted()}")
    by_name: dict[str, list[Result]] = {n: [] for n in names}
    spool: list[tuple[float, float, float]] = []  # ready with an empty spool, with N events, replay/s
    with tempfile.TemporaryDirectory(prefix="track-bench-") as tmp:
        for _ in range(args.rounds):
            for name in names:
                args.track_http = f"127.0.0.1:{free_port()}"
                by_name[name].append(SCENARIOS[name](args, tmp))
            if spool_runs:
                args.track_http = f"127.0.0.1:{free_port()}"
                empty, _ = spool_start_and_replay(args, tmp, 0)
                args.track_http = f"127.0.0.1:{free_port()}"
                full, rate = spool_start_and_replay(args, tmp, args.spool_events)
                spool.append((empty, full, rate))
    medians = [median_result(rs) for rs in by_name.values()]
    floor = next((r.eps for n, r in zip(names, medians, strict=True) if n == "floor"), None)
    peer = next((r.eps for n, r in zip(names, medians, strict=True) if n == "peer"), None)
    print(table(medians, floor, peer))
    client = next((r.eps for n, r in zip(names, medians, strict=True) if n == "client"), None)
    single = next((r.eps for n, r in zip(names, medians, strict=True) if n == "track"), None)
    if client and single:
        print(f"\nclient: one Python process through track.client.Client, {client:.0f} events/s "
              f"= {client / single:.2f} x single events over {args.connections} wrk connections ({single:.0f}/s)")
    batch = next((r.eps for n, r in zip(names, medians, strict=True) if n == "batch"), None)
    if client and batch:
        ratios = sorted(c.eps / b.eps for c, b in zip(by_name["client"], by_name["batch"], strict=True))
        print(f"\nclient / batch: median {ratios[len(ratios) // 2]:.2f} over {len(ratios)} rounds "
              f"(each: {', '.join(f'{r:.2f}' for r in ratios)}): one Python process with the Client's defaults "
              f"(median {client:.0f} events/s) against batches of 100 prebuilt for wrk over {args.connections} "
              f"connections (median {batch:.0f} events/s)")
    base = next((r for n, r in zip(names, medians, strict=True) if n == "base"), None)
    if base is not None:
        print(f"\nagainst the baseline tree {args.baseline} (events/s ratio, CPU us/event ratio; "
              "per round, then the medians'):")
        for name, results in by_name.items():
            if name in ("base", "floor", "peer", "batch", "batch-base"):
                continue
            rounds = ", ".join(f"{r.eps / b.eps:.3f}/{r.cpu_us_per_event / b.cpu_us_per_event:.3f}"
                               for r, b in zip(results, by_name["base"], strict=True))
            m = median_result(results)
            cpu = m.cpu_us_per_event / base.cpu_us_per_event
            print(f"  {name:<10} {rounds}  median {m.eps / base.eps:.3f}/{cpu:.3f}")
    for name, of in (("batch", "batch-base"), ("custom", "track")):
        if name in by_name and of in by_name:
            each = [(r.eps / o.eps, r.cpu_us_per_event / o.cpu_us_per_event)
                    for r, o in zip(by_name[name], by_name[of], strict=True)]
            rates, cpus = sorted(e for e, _ in each), sorted(c for _, c in each)
            print(f"{name} / {of} (events/s, CPU us/event): median {rates[len(rates) // 2]:.3f}/"
                  f"{cpus[len(cpus) // 2]:.3f} (each round: {', '.join(f'{e:.3f}/{c:.3f}' for e, c in each)})")
    if "track-2w-base" in by_name:
        for name in (n for n in ("track-2w", "track-2w-watched") if n in by_name):
            ratios = sorted(r.eps / b.eps for r, b in zip(by_name[name], by_name["track-2w-base"], strict=True))
            print(f"{name} / track-2w-base: median {ratios[len(ratios) // 2]:.3f} "
                  f"(each round: {', '.join(f'{x:.3f}' for x in ratios)})")
    if spool:
        batch = next((r.eps for n, r in zip(names, medians, strict=True) if n == "batch"), None)
        empty, full, rate = sorted(spool, key=lambda s: s[2])[len(spool) // 2]
        print(f"\nspool: ready (/readyz 200) {full:.2f} s after start with {args.spool_events} spooled events, "
              f"{empty:.2f} s with none; replay {rate:.0f} events/s"
              + (f" = {rate / batch:.2f} x the live batch ingest ({batch:.0f} events/s)" if batch else "")
              + "   [each round: " + "; ".join(f"{f:.2f} s / {r:.0f} ev/s" for _, f, r in spool) + "]")
    print(f"\nmedians of {args.rounds} rounds; connections={args.connections} duration={args.duration}s "
          f"after {args.warmup}s warm-up; "
          f"cores={os.cpu_count()}; wrk on the same machine")
    lost = [r for rs in by_name.values() for r in rs
            if r.rows is not None and r.acked is not None and r.rows < r.acked]
    if lost:
        print("ERROR: fewer rows stored than events acknowledged: "
              + "; ".join(f"{r.name}: {r.rows} rows, {r.acked} acknowledged" for r in lost), file=sys.stderr)
        return 1
    return 0


def median_result(results: list[Result]) -> Result:
    """The round with the median rate (its own latencies and RSS)."""
    ordered = sorted(results, key=lambda r: r.eps)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    sys.exit(main())
