"""Event rates per kind and per rejection reason over the last five
minutes or the last hour, for the page's graphs: the counters sampled
every few seconds, kept in a bounded ring."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from track.admin.views import Counts, by_reason

SAMPLE_SECONDS = 2.0
WINDOWS = (300, 3600)  # the page's graphs: the last 5 minutes, the last hour
KEEP = int(WINDOWS[-1] / SAMPLE_SECONDS) + 2  # samples: an hour, and one before it
POINTS = 150  # at most, per line of a graph: an hour is drawn from every 12th sample


class History(Service):
    def __init__(self, read: Callable[[], Counts], clock: Any, keep: int = KEEP,
                 tick: Callable[[], None] = lambda: None) -> None:
        self.read = read
        self.tick = tick  # the page's other timekeeping (Recent.tick), on the same loop
        self.clock = clock
        # (time, counts, rejected by reason): the reasons summed once, here.
        self.samples: deque[tuple[float, Counts, dict[str, float]]] = deque(maxlen=keep)
        self._cached: dict[float, tuple[float, dict[str, Any]]] = {}  # window: (newest sample, rates)
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
        counts = self.read()
        self.samples.append((self.clock.seconds(), counts, by_reason(counts)))
        self.tick()

    def rates(self, window: float = WINDOWS[0]) -> dict[str, Any]:
        """Events per second over the last `window` seconds, between
        samples (oldest first): `t`, the clock time each rate ends at;
        per kind, accepted and rejected; per rejection reason, over all
        kinds.  The page draws them on a fixed window, so a short uptime
        shows as a short line, not stretched.  A counter that went down (a
        restart of a single process) counts as a fresh start, never as a
        negative rate."""
        newest = self.samples[-1][0] if self.samples else 0.0
        cached = self._cached.get(window)
        if cached is not None and cached[0] == newest:  # the page polls twice per sample
            return cached[1]
        result = self._rates(window)
        self._cached[window] = (newest, result)
        return result

    def _rates(self, window: float) -> dict[str, Any]:
        now = self.clock.seconds()
        stride = max(1, round(window / SAMPLE_SECONDS / POINTS))
        recent = [s for s in self.samples if s[0] >= now - window - SAMPLE_SECONDS * stride]
        picked = recent[::-1][::stride][::-1]  # the newest sample always
        times: list[float] = []
        kinds: dict[str, dict[str, list[float]]] = {}
        reasons: dict[str, list[float]] = {}
        names = sorted({k for _, c, _ in picked for k in c})
        for kind in names:
            kinds[kind] = {"accepted": [], "rejected": []}
        all_reasons = sorted({r for _, _, rs in picked for r in rs})
        for reason in all_reasons:
            reasons[reason] = []
        for (t0, c0, r0), (t1, c1, r1) in pairwise(picked):
            span = max(t1 - t0, 1e-9)
            times.append(round(t1, 3))
            for kind, series in kinds.items():
                for column, values in series.items():
                    values.append(_rate(c0.get(kind, {}).get(column, 0.0), c1.get(kind, {}).get(column, 0.0), span))
            for reason, values in reasons.items():
                values.append(_rate(r0.get(reason, 0.0), r1.get(reason, 0.0), span))
        return {"window": window, "t": times, "kinds": kinds, "reasons": reasons}


def _rate(before: float, after: float, seconds: float) -> float:
    delta = after - before if after >= before else after
    return round(delta / seconds, 3)
