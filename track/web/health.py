"""What the public /healthz may tell anyone who can reach the collector.

The admin listener's /healthz shows everything (database hosts, errors,
spool paths, worker pids); the public one keeps only what a load balancer
or an uptime check needs: a whitelist, so nothing added to the full answer
later leaks out here by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_KEPT = {"spool": ("events", "bytes", "writable"), "dead_letter": ("events", "corrupt_bytes")}


def public_health(state: Mapping[str, Any]) -> dict[str, Any]:
    """`status`, `database` (up/down) and the spool and dead-letter counts
    of a full health answer: no host name, DSN, error text or path."""
    result: dict[str, Any] = {k: state[k] for k in ("status", "database") if k in state}
    for part, keys in _KEPT.items():
        values = state.get(part)
        if isinstance(values, Mapping):
            result[part] = {k: values[k] for k in keys if k in values}
    return result
