"""What the admin listener shows, from where it lives: in this process
(one worker) or in the workers' shared directory (`--workers N`, read by
the parent).  Both views answer the same questions."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric

from track.admin.recent import Recent
from track.admin.shared import merge_health, read_all, touch_watching
from track.fields.kinds import EventType
from track.metrics import Metrics, collect_directory, render_directory

Counts = dict[str, dict[str, float]]


@dataclass(frozen=True)
class About:
    version: str
    dsn: str  # redacted: never the password
    started: float


def counts(families: Iterable[Metric]) -> Counts:
    """Accepted and rejected events per kind, from the metric families."""
    result: Counts = {}
    wanted = {"track_events_accepted": "accepted", "track_events_rejected": "rejected"}
    for family in families:
        column = wanted.get(family.name)
        if column is None:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            kind = sample.labels.get("type", "?")
            entry = result.setdefault(kind, {"accepted": 0.0, "rejected": 0.0})
            entry[column] += sample.value
    return result


class View(Protocol):
    about: About

    def health(self) -> dict[str, Any]: ...
    def ready(self) -> bool: ...
    def metrics(self) -> bytes: ...
    def counts(self) -> Counts: ...
    def recent(self) -> dict[str, list[dict[str, Any]]]: ...
    def tick(self) -> None: ...


class LocalView:
    """One process: its own metrics, writer and buffers."""

    def __init__(self, about: About, metrics: Metrics, health: Any, recent: Recent,
                 event_types: Mapping[str, EventType]) -> None:
        self.about = about
        self._metrics = metrics
        self._health = health
        self._recent = recent
        self._event_types = event_types

    def health(self) -> dict[str, Any]:
        state: dict[str, Any] = self._health.health()
        if "workers" not in state:
            state = {**state, "workers": [{"worker": 0, "pid": os.getpid(), "started": self.about.started,
                                           "ready": self._health.ready(), "recording": self._recent.live,
                                           **state}]}
        return state

    def ready(self) -> bool:
        return bool(self._health.ready())

    def metrics(self) -> bytes:
        return self._metrics.render()

    def counts(self) -> Counts:
        return counts(self._metrics.collect())

    def recent(self) -> dict[str, list[dict[str, Any]]]:
        self._recent.watch(time.time())
        return self._recent.snapshot(self._event_types)

    def tick(self) -> None:
        self._recent.tick(time.time())


class SharedView:
    """`--workers N`, in the parent: every worker's files, merged."""

    def __init__(self, about: About, directory: str, metrics_directory: str) -> None:
        self.about = about
        self.directory = directory
        self.metrics_directory = metrics_directory

    def _reports(self) -> list[dict[str, Any]]:
        return sorted(read_all(self.directory, "worker-"), key=lambda r: int(r["worker"]))

    def health(self) -> dict[str, Any]:
        return merge_health(self._reports())

    def ready(self) -> bool:
        reports = self._reports()
        return bool(reports) and all(r["ready"] for r in reports)

    def metrics(self) -> bytes:
        return render_directory(self.metrics_directory)

    def counts(self) -> Counts:
        return counts(collect_directory(self.metrics_directory))

    def tick(self) -> None:
        """Each worker notices the page itself (see shared.WorkerReport)."""

    def recent(self) -> dict[str, list[dict[str, Any]]]:
        """Every worker's latest, merged newest first, each marked with its worker."""
        touch_watching(self.directory)  # the workers start (or keep) reporting theirs
        merged: dict[str, list[dict[str, Any]]] = {"accepted": [], "rejected": []}
        for snapshot in read_all(self.directory, "recent-"):
            for name, entries in merged.items():
                entries.extend({**e, "worker": snapshot.get("worker")} for e in snapshot.get(name, []))
        for entries in merged.values():
            entries.sort(key=lambda e: e["time"], reverse=True)
        return merged


def uptime(about: About) -> float:
    return time.time() - about.started
