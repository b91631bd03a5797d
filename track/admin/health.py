"""Every health answer, built here: /healthz (admin and public), /readyz,
and what a worker of --workers reports to the others.

The Writer keeps the database's up/down state; this module turns that
state, the store's hosts and the spool's counts into JSON.  Nothing here
touches a file: the dead-letter counts are the spool's last count, redone
on the spool's thread (Spool.dead_letter_counts), so a /healthz never
waits on a disk.  The public /healthz filters this answer
(track.web.health.public_health).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from track.pipeline.writer import Writer


class ProcessHealth:
    """One process's health (track.seams.Health): its database, hosts,
    spool and dead letters."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def health(self) -> dict[str, Any]:
        writer = self.writer
        state: dict[str, Any] = {"status": "ok", "database": "up" if writer.up else "down"}
        if not writer.up and writer.down_reason:
            state["database_error"] = writer.down_reason
        hosts = writer.store.hosts_health()
        if hosts:
            state.update(hosts)
        spool = writer.spool
        if spool is None:
            state["spool"] = {"events": 0, "bytes": 0, "writable": False, "error": "turned off"}
            state["dead_letter"] = {"events": 0, "corrupt_bytes": 0}
            return state
        state["spool"] = {"events": spool.events, "bytes": spool.bytes, "writable": spool.writable}
        if spool.error:
            state["spool"]["error"] = spool.error
        events, corrupt = spool.dead_letter_counts()
        state["dead_letter"] = {"events": events, "corrupt_bytes": corrupt}
        return state

    def ready(self) -> bool:
        return self.writer.ready()


def one_worker(state: Mapping[str, Any], started: float, ready: bool, recording: bool) -> dict[str, Any]:
    """A single process's answer in the shape of the workers' (the admin
    page reads `workers`)."""
    if "workers" in state:
        return dict(state)
    return {**state, "workers": [{"worker": 0, "pid": os.getpid(), "started": started, "ready": ready,
                                  "recording": recording, **state}]}


def merge_health(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One health answer for the whole service: the first worker's, with
    spool and dead-letter amounts summed, the database up only while every
    worker has it up, and each worker's own answer under `workers`."""
    healths = [r["health"] for r in reports]
    if not healths:
        return {"status": "starting", "workers": []}  # no worker has reported yet
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in healths[0].items()}
    for part in ("spool", "dead_letter"):
        for key, value in healths[0].get(part, {}).items():
            if isinstance(value, bool):
                merged[part][key] = all(h.get(part, {}).get(key) for h in healths)
            elif isinstance(value, (int, float)):
                merged[part][key] = sum(h.get(part, {}).get(key, 0) for h in healths)
    down = [h for h in healths if h.get("database") != "up"]
    if down:
        merged["database"] = "down"
        if "database_error" in down[0]:
            merged["database_error"] = down[0]["database_error"]
    merged["workers"] = [{"worker": r["worker"], "pid": r["pid"], "started": r["started"],
                          "reported": r.get("reported"), "ready": r["ready"], "recording": r.get("recording"),
                          "holding": r.get("holding"),
                          **r["health"]} for r in reports]
    return merged
