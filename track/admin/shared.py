"""How the workers of `--workers N` share what the admin listener and
`/healthz` show: one small directory (the parent's, named on each
worker's command line: track/run/config.py's Worker), where each worker
replaces its own files twice a second.

- `worker-<i>.json`: its health (track.admin.health), readiness, pid and
  start, and the kinds it serves;
- `recent-<i>.json`: its latest events, written only while someone watches
  the live page (the parent touches `watching` on every poll of the feed)
  and only when something new arrived: the newest SHOWN of each list, or
  while someone searches (`searching`, touched too), all it holds;
- `metrics/`: prometheus_client's multiprocess files (track/metrics.py).

Files, not messages to the parent: a worker never waits on anyone to
report, a reader never waits on a busy worker, and a worker that dies
leaves nothing half-said (each file is replaced whole, with a rename; the
parent removes the files of a worker that has died).  The price is up to
half a second of staleness, which a page for people and a health check
can afford.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from track.admin.health import merge_health
from track.admin.recent import SHOWN, WATCH_SECONDS, Recent
from track.fields.kinds import Kind
from track.seams import Health

REPORT_SECONDS = 0.5
WATCH_FILE = "watching"
SEARCH_FILE = "searching"  # touched while someone searches: workers write all they hold


def worker_file(directory: str, index: int) -> str:
    return os.path.join(directory, f"worker-{index}.json")


def recent_file(directory: str, index: int) -> str:
    return os.path.join(directory, f"recent-{index}.json")


def replace_json(path: str, value: Any) -> None:
    """Write `path` whole or not at all (readers never see half a file)."""
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(partial, path)


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # not written yet, or gone with its worker


def read_all(directory: str, prefix: str) -> list[Any]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".json"))
    except OSError:
        return []
    return [v for v in (read_json(os.path.join(directory, n)) for n in names) if v is not None]


def touch_watching(directory: str, everything: bool = False) -> None:
    """The page looks: workers write their newest SHOWN events out, or
    with `everything` (a search, the query API) all they hold."""
    for name in (WATCH_FILE, SEARCH_FILE) if everything else (WATCH_FILE,):
        path = os.path.join(directory, name)
        with open(path, "a"):
            pass
        os.utime(path)


def _fresh(directory: str, name: str, now: float) -> bool:
    try:
        return now - os.stat(os.path.join(directory, name)).st_mtime < WATCH_SECONDS
    except OSError:
        return False


def watched(directory: str, now: float) -> str | None:
    """None (nobody looks), "latest" (the page) or "all" (a search)."""
    if not _fresh(directory, WATCH_FILE, now):
        return None
    return "all" if _fresh(directory, SEARCH_FILE, now) else "latest"


def remove_worker(directory: str, index: int) -> None:
    for path in (worker_file(directory, index), recent_file(directory, index)):
        try:
            os.remove(path)
        except OSError:
            pass


class SharedHealth:
    """A worker's /healthz and /readyz: the whole service's health (this
    worker's own, live, with the others' latest reports), its own readiness."""

    def __init__(self, health: Health, directory: str, index: int, started: float) -> None:
        self.own = health
        self.directory = directory
        self.index = index
        self.started = started

    def report(self) -> dict[str, Any]:
        return {"worker": self.index, "pid": os.getpid(), "started": self.started, "reported": time.time(),
                "ready": self.own.ready(), "health": self.own.health()}

    def health(self) -> dict[str, Any]:
        others = [r for r in read_all(self.directory, "worker-") if r.get("worker") != self.index]
        reports = sorted([self.report(), *others], key=lambda r: int(r["worker"]))
        return merge_health(reports)

    def ready(self) -> bool:
        return self.own.ready()


class WorkerReport(Service):
    """A worker's side: every REPORT_SECONDS, its gauges into its metrics
    file, its health into worker-<i>.json, and while the page is watched,
    its latest events into recent-<i>.json."""

    def __init__(self, shared: SharedHealth, refresh: Callable[[], None], recent: Recent | None,
                 kinds: Mapping[str, Kind], clock: Any) -> None:
        self.shared = shared
        self.refresh = refresh
        self.recent = recent
        self.kinds = kinds
        self._written: tuple[int, str] | None = None
        self._loop = LoopingCall(self.report)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop.start(REPORT_SECONDS, now=True)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._loop.running:
            self._loop.stop()

    def report(self) -> None:
        directory, index = self.shared.directory, self.shared.index
        try:
            self.refresh()
            recent = self.recent
            now = time.time()
            mode = None
            if recent is not None:
                looking = watched(directory, now)
                if looking is not None:
                    recent.watch(now)
                recent.tick(now)
                if recent.live:
                    mode = looking or "latest"
            # Its events first, then its report: a report that says "all"
            # is never read before the file it speaks of.
            if recent is not None and mode is not None and (recent.version, mode) != self._written:
                self._written = (recent.version, mode)
                limit = None if mode == "all" else SHOWN
                replace_json(recent_file(directory, index),
                             {"worker": index, **recent.snapshot(self.kinds, limit), "held": recent.held()})
            # "recording": this worker writes its latest events out for the
            # open page; "holding": "latest" (the newest SHOWN) or "all";
            # "kinds": what it serves, in order, for the page's tables.
            replace_json(worker_file(directory, index),
                         {**self.shared.report(), "recording": mode is not None, "holding": mode,
                          "kinds": list(self.kinds)})
        except OSError:
            pass  # the parent's directory is gone: it is shutting down
