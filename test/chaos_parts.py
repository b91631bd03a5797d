"""The parts of test/chaos.py: the supervisor, the clients and the nemesis.

The supervisor starts the collector as systemd would (Restart=always, the
same arguments every time, 0.2 s apart) and never touches what a killed
collector may leave behind: leftover workers must go by themselves.  The
clients post session events over keep-alive connections, each with its
MessageID and a SessionID unique to the event, retrying the same event
until it gets a 201.  The nemesis applies faults at random, one at a time.
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

SESSION_PATH = "/api/1.0/track/session/"
HANG_SECONDS = 15.0  # a request unanswered this long is a hang
RESTART_SEC = 0.2  # the supervisor's pause before a restart (systemd's RestartSec)
RETRY_PAUSE = 0.05
MAX_EVENTS = 5_000_000  # bound on the whole load, whatever --minutes says
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian's libfaketime


class Supervisor(threading.Thread):
    """Runs `argv` and restarts it whenever it exits (see the module)."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str], logs: str) -> None:
        super().__init__(daemon=True)
        self.argv, self.cwd, self.env, self.logs = argv, cwd, env, logs
        self.clock_shift = ""  # FAKETIME for the next start ("" : the real clock)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.failed: list[str] = []  # starts that exited by themselves before listening: their last line
        self.killed_starting = 0  # starts killed (by the nemesis) before they listened
        self.stopping = False
        self.listening = threading.Event()

    def run(self) -> None:
        while not self.stopping:
            env = dict(self.env)
            if self.clock_shift:
                env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=self.clock_shift, FAKETIME_DONT_RESET="1")
            self.starts += 1
            path = os.path.join(self.logs, f"collector-{self.starts}.log")
            with open(path, "wb") as out:
                self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=subprocess.STDOUT)
                self.proc.wait()
            with open(path, "rb") as f:
                text = f.read()
            if b"track listening on" not in text:
                if self.proc.returncode < 0:  # the nemesis killed it while it started: no fault of its own
                    self.killed_starting += 1
                else:
                    last = text.strip().splitlines()[-1:] or [b"(no output)"]
                    self.failed.append(f"start {self.starts}: {last[0].decode(errors='replace')[:200]}")
            time.sleep(RESTART_SEC)

    def pid(self) -> int | None:
        proc = self.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def stop(self, timeout: float = 90.0) -> bool:
        """SIGTERM, no restart; False if it did not exit in time."""
        self.stopping = True
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            proc = self.proc  # a start may be under way as we stop: end whichever runs
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    return False
            self.join(RESTART_SEC * 5)
        return not self.is_alive()


@dataclass
class Tally:
    acked: list[tuple[str, str]] = field(default_factory=list)  # (MessageID, SessionID)
    sent: set[str] = field(default_factory=set)
    given_up: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    hangs: int = 0
    latencies: list[tuple[float, float, str]] = field(default_factory=list)  # (start, seconds, status)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Clients:
    """`count` threads posting until stopped, each event retried until 201."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.tally = Tally()
        self.stopping = False
        self.drain_deadline = float("inf")  # after it, an unacknowledged event is given up
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(count)]
        for t in self.threads:
            t.start()

    def _post(self, conn: http.client.HTTPConnection, body: str) -> str:
        conn.request("POST", SESSION_PATH, body, {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return str(response.status)

    def _client(self, n: int) -> None:
        tally = self.tally
        conn: http.client.HTTPConnection | None = None
        seq = 0
        while not self.stopping and len(tally.sent) < MAX_EVENTS:
            seq += 1
            mid, sid = uuid.uuid4().hex, f"c{n}-{seq}"
            body = urlencode({"Region": "eu", "SessionID": sid, "RemoteIP": "10.0.0.1",
                              "SessionType": "chaos", "MessageID": mid})
            with tally.lock:
                tally.sent.add(mid)
            while True:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HANG_SECONDS)
                began = time.monotonic()
                try:
                    status = self._post(conn, body)
                except TimeoutError:
                    status = "no answer"
                except ConnectionRefusedError:
                    status = "refused"
                except (OSError, http.client.HTTPException):
                    status = "connection lost"
                if status != "201" and conn is not None:
                    conn.close()
                    conn = None
                with tally.lock:
                    tally.statuses[status] += 1
                    tally.hangs += status == "no answer"
                    tally.latencies.append((began, time.monotonic() - began, status))
                    if status == "201":
                        tally.acked.append((mid, sid))
                if status == "201":
                    break
                if time.monotonic() > self.drain_deadline:
                    with tally.lock:
                        tally.given_up.append(mid)
                    break
                time.sleep(RETRY_PAUSE)

    def stop(self, drain_seconds: float) -> None:
        """Finish each client's event in hand (bounded), then stop."""
        self.drain_deadline = time.monotonic() + drain_seconds
        self.stopping = True
        for t in self.threads:
            t.join(drain_seconds + HANG_SECONDS + 5)


class Nemesis(threading.Thread):
    """Every 2-6 s, one fault of `faults` chosen at random, applied and undone."""

    def __init__(self, faults: dict[str, Callable[[], None]], seed: int) -> None:
        super().__init__(daemon=True)
        self.faults = faults
        self.rng = random.Random(seed)
        self.applied: Counter[str] = Counter()
        self.stopping = False
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stopping:
            time.sleep(self.rng.uniform(2, 6))
            if self.stopping:
                break
            name = self.rng.choice(sorted(self.faults))
            try:
                self.faults[name]()
            except Exception as e:  # a fault the harness could not apply: say so at the end
                self.errors.append(f"{name}: {e!r}")
            self.applied[name] += 1


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def within(windows: list[tuple[float, float]], latencies: list[tuple[float, float, str]]) -> list[float]:
    """Latencies of the requests in flight at some moment of one of `windows`
    (those begun just before a stop are the ones it holds longest)."""
    return [s for began, s, _ in latencies if any(began <= b and began + s >= a for a, b in windows)]


def pause(rng: random.Random, low: float, high: float) -> float:
    seconds = rng.uniform(low, high)
    time.sleep(seconds)
    return seconds

