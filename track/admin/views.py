"""What the admin listener shows, from where it lives: in this process
(one worker) or in the workers' shared directory (`--workers N`, read by
the parent).  Both views answer the same questions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric

from track.admin.health import merge_health, one_worker
from track.admin.recent import KEEP, SHOWN, WATCH_SECONDS, Recent
from track.admin.shared import read_all, touch_watching
from track.fields.kinds import Kind
from track.metrics import Metrics, collect_directory, render_directory
from track.seams import Health

Counts = dict[str, dict[str, float]]


@dataclass(frozen=True)
class About:
    version: str
    dsn: str  # redacted: never the password
    started: float


BATCH_REQUESTS = "batch requests"  # a key of Counts that names no kind: the batch requests themselves
REASON = "rejected:"  # Counts[kind][REASON + reason]: the rejected, by reason


def counts(families: Iterable[Metric]) -> Counts:
    """Accepted and rejected events per kind (and rejected by reason), and
    batch requests under BATCH_REQUESTS, from the metric families."""
    result: Counts = {}
    for family in families:
        if family.name not in ("track_events_accepted", "track_events_rejected", "track_batch_requests"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == "track_batch_requests":
                kind = BATCH_REQUESTS
                reason = sample.labels.get("result", "?")
                column = "accepted" if reason == "accepted" else "rejected"
            else:
                kind = sample.labels.get("type", "?")
                column = "accepted" if family.name == "track_events_accepted" else "rejected"
                reason = sample.labels.get("reason", "?")
            entry = result.setdefault(kind, {"accepted": 0.0, "rejected": 0.0})
            entry[column] += sample.value
            if column == "rejected":
                entry[REASON + reason] = entry.get(REASON + reason, 0.0) + sample.value
    return result


def by_reason(counted: Counts) -> dict[str, float]:
    """Rejected events by reason, over every kind (not batch requests)."""
    reasons: dict[str, float] = {}
    for kind, entry in counted.items():
        if kind == BATCH_REQUESTS:
            continue
        for key, value in entry.items():
            if key.startswith(REASON):
                reasons[key[len(REASON):]] = reasons.get(key[len(REASON):], 0.0) + value
    return reasons


class View(Protocol):
    about: About

    def health(self) -> dict[str, Any]: ...
    def ready(self) -> bool: ...
    def metrics(self) -> bytes: ...
    def counts(self) -> Counts: ...
    def recent(self, limit: int | None = None) -> dict[str, Any]:
        """The latest events, newest first (`limit` of each list, or all),
        and under "held" how many of each are held."""
    def keep(self) -> int: ...
    def served(self) -> list[str]:
        """The kinds the service serves, in its order (custom ones included)."""
    def settled(self, limit: int | None) -> bool:
        """What recent(limit) answers is all there is to answer (with
        workers: each has written out what it holds since it was asked)."""
    def tick(self) -> None: ...


class LocalView:
    """One process: its own metrics, writer and buffers."""

    def __init__(self, about: About, metrics: Metrics, health: Health, recent: Recent,
                 kinds: Mapping[str, Kind]) -> None:
        self.about = about
        self._metrics = metrics
        self._health = health
        self._recent = recent
        self._kinds = kinds

    def health(self) -> dict[str, Any]:
        return one_worker(self._health.health(), self.about.started, self._health.ready(), self._recent.live)

    def ready(self) -> bool:
        return self._health.ready()

    def metrics(self) -> bytes:
        return self._metrics.render()

    def counts(self) -> Counts:
        return counts(self._metrics.collect())

    def recent(self, limit: int | None = None) -> dict[str, Any]:
        self._recent.watch(time.time())
        return {**self._recent.snapshot(self._kinds, limit), "held": self._recent.held()}

    def keep(self) -> int:
        return self._recent.keep

    def served(self) -> list[str]:
        return list(self._kinds)  # the live tables: a reload that adds a kind shows here

    def settled(self, limit: int | None) -> bool:
        return True

    def tick(self) -> None:
        self._recent.tick(time.time())


class SharedView:
    """`--workers N`, in the parent: every worker's files, merged."""

    def __init__(self, about: About, directory: str, metrics_directory: str, keep: int = KEEP,
                 restarts: Mapping[int, tuple[int, float]] | None = None) -> None:
        self.about = about
        self.directory = directory
        self.metrics_directory = metrics_directory
        self._keep = keep  # per list, in each worker
        self._restarts = restarts if restarts is not None else {}  # WorkerPool.restarts, live
        # When the page (False) and a search (True) began asking, to know
        # when every worker has answered since.
        self._asked: dict[bool, float] = {}
        self._last_ask: dict[bool, float] = {}

    def keep(self) -> int:
        return self._keep

    def _reports(self) -> list[dict[str, Any]]:
        return sorted(read_all(self.directory, "worker-"), key=lambda r: int(r["worker"]))

    def served(self) -> list[str]:
        """The kinds the workers serve, in their order (one that serves
        more, while a reload reaches them one by one, adds its own)."""
        names: dict[str, None] = {}
        for report in self._reports():
            names.update(dict.fromkeys(report.get("kinds", ())))
        return list(names)

    def health(self) -> dict[str, Any]:
        merged = merge_health(self._reports())
        for worker in merged.get("workers", []):
            count, last = self._restarts.get(int(worker["worker"]), (0, None))
            worker["restarts"], worker["restarted"] = count, last
        return merged

    def ready(self) -> bool:
        reports = self._reports()
        return bool(reports) and all(r["ready"] for r in reports)

    def metrics(self) -> bytes:
        return render_directory(self.metrics_directory)

    def counts(self) -> Counts:
        return counts(collect_directory(self.metrics_directory))

    def tick(self) -> None:
        """Each worker notices the page itself (see shared.WorkerReport)."""

    def _everything(self, limit: int | None) -> bool:
        return limit is None or limit > SHOWN

    def _ask(self, everything: bool) -> None:
        now = time.time()
        for kind in {everything, False}:
            if now - self._last_ask.get(kind, 0.0) >= WATCH_SECONDS:
                self._asked[kind] = now  # a new question: the workers were not writing this out
            self._last_ask[kind] = now
        touch_watching(self.directory, everything)  # the workers start (or keep) reporting theirs

    def settled(self, limit: int | None) -> bool:
        everything = self._everything(limit)
        self._ask(everything)
        asked = self._asked[everything]
        reports = self._reports()
        return all((r.get("holding") == "all" if everything else r.get("recording"))
                   and float(r.get("reported") or 0.0) > asked for r in reports)

    def recent(self, limit: int | None = None) -> dict[str, Any]:
        """Every worker's latest, merged newest first, each marked with its
        worker (each writes its newest SHOWN, or all it holds while asked
        for more than that)."""
        self._ask(self._everything(limit))
        merged: dict[str, list[dict[str, Any]]] = {"accepted": [], "rejected": []}
        held = {"accepted": 0, "rejected": 0}
        for snapshot in read_all(self.directory, "recent-"):
            for name, entries in merged.items():
                entries.extend({**e, "worker": snapshot.get("worker")} for e in snapshot.get(name, []))
                held[name] += int(snapshot.get("held", {}).get(name, len(snapshot.get(name, []))))
        for entries in merged.values():
            entries.sort(key=lambda e: e["time"], reverse=True)
        return {**{name: entries[:limit] for name, entries in merged.items()}, "held": held}


def uptime(about: About) -> float:
    return time.time() - about.started
