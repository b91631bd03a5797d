"""Per-client rate limits (`--rate-limit N`): a token bucket per client
address, N events a second with a burst of 2N, in a bounded LRU.

One client stuck in a retry loop must not take the database's whole write
capacity from everyone else.  Each request costs its number of events (a
batch of 100 costs 100); a client over its rate is answered 429 with
Retry-After before anything is stored.

The cost per request is O(1): one dict lookup, a move to the LRU's end, a
little arithmetic.  Memory is bounded by `max_clients` buckets; the least
recently seen client's bucket is dropped first (it has refilled by then
unless the table churns faster than a bucket refills, and then a new
address costs an attacker nothing anyway: a fresh one starts full).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from twisted.internet.interfaces import IReactorTime

DEFAULT_MAX_CLIENTS = 65536
# Tokens are floats refilled from reactor.seconds(), which at today's epoch
# steps by about 2e-7 s: a request due "now" could miss by a rounding error.
_EPSILON = 1e-6


class RateLimiter:
    """Token buckets keyed by client address, on the reactor thread only."""

    def __init__(self, rate: float, clock: IReactorTime, burst: float | None = None,
                 max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, not {rate!r}")
        self.rate = rate
        self.burst = burst if burst is not None else 2 * rate
        self.clock = clock
        self.max_clients = max_clients
        # client -> [tokens, when last refilled]; oldest use first.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, cost: int = 1) -> float:
        """Spend `cost` tokens of `client`'s bucket: 0.0 if the request may
        go on, else the seconds until it would be allowed (nothing spent).

        A request costing more than the whole burst (a big batch) is allowed
        once the bucket is full, and leaves it in debt: over time a client
        still gets no more than `rate` events a second."""
        now = self.clock.seconds()
        buckets = self._buckets
        bucket = buckets.get(client)
        if bucket is None:
            if len(buckets) >= self.max_clients:
                buckets.popitem(last=False)
            bucket = buckets[client] = [self.burst, now]
        else:
            buckets.move_to_end(client)
            tokens = bucket[0] + (now - bucket[1]) * self.rate
            bucket[0] = tokens if tokens < self.burst else self.burst
            bucket[1] = now
        need = cost if cost < self.burst else self.burst
        if bucket[0] + _EPSILON >= need:
            bucket[0] -= cost
            return 0.0
        return (need - bucket[0]) / self.rate  # > _EPSILON / rate: never 0.0


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: at least 1."""
    return max(1, math.ceil(seconds))
