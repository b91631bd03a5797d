"""Event rates per kind over the last minutes, for the page's graphs:
the counters sampled every few seconds, kept in a bounded ring."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from track.admin.views import Counts

SAMPLE_SECONDS = 2.0
KEEP = 150  # samples: five minutes


class History(Service):
    def __init__(self, read: Callable[[], Counts], clock: Any, keep: int = KEEP,
                 tick: Callable[[], None] = lambda: None) -> None:
        self.read = read
        self.tick = tick  # the page's other timekeeping (Recent.tick), on the same loop
        self.clock = clock
        self.samples: deque[tuple[float, Counts]] = deque(maxlen=keep)
        self._loop = LoopingCall(self.sample)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop.start(SAMPLE_SECONDS, now=True)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._loop.running:
            self._loop.stop()

    def sample(self) -> None:
        self.samples.append((self.clock.seconds(), self.read()))
        self.tick()

    def rates(self) -> dict[str, dict[str, list[float]]]:
        """Per kind, accepted and rejected events per second between samples
        (oldest first).  A counter that went down (a restart of a single
        process) counts as a fresh start, never as a negative rate."""
        result: dict[str, dict[str, list[float]]] = {}
        samples = list(self.samples)
        kinds = sorted({k for _, c in samples for k in c})
        for kind in kinds:
            series: dict[str, list[float]] = {"accepted": [], "rejected": []}
            for (t0, c0), (t1, c1) in pairwise(samples):
                for column, values in series.items():
                    before = c0.get(kind, {}).get(column, 0.0)
                    after = c1.get(kind, {}).get(column, 0.0)
                    delta = after - before if after >= before else after
                    values.append(round(delta / max(t1 - t0, 1e-9), 3))
            result[kind] = series
        return result
