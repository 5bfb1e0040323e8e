"""Token buckets per key (an API key, a session, an address, an address and login name), in process memory."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from ..errors import RateLimitedError

# Several buckets spent together: key -> scale (that bucket holds and refills ``scale`` times the tokens).
Buckets = Mapping[str, int]


class TokenBucketLimiter:
    """``capacity`` tokens per key, refilled at ``rate_per_s``; a request spends one.

    A key whose bucket has refilled completely holds no state, so the table
    is pruned of such keys when it grows (memory stays bounded by the keys
    active within one refill time).
    """

    def __init__(self, *, rate_per_s: float, capacity: int, clock: Callable[[], float] = time.monotonic,
                 prune_above: int = 10_000) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._prune_above = prune_above
        self._buckets: dict[str, tuple[float, float, int]] = {}  # key -> (tokens, at, scale)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Keys holding state (a bucket below capacity)."""
        return len(self._buckets)

    def _tokens(self, key: str, now: float, scale: int) -> float:
        tokens, at, _ = self._buckets.get(key, (self.capacity * scale, now, scale))
        return min(self.capacity * scale, tokens + (now - at) * self.rate_per_s * scale)

    def take(self, key: str) -> float:
        """Spend a token; returns 0 when there was one, else the seconds until there will be (nothing spent)."""
        return self.take_all({key: 1})

    def take_all(self, buckets: Buckets) -> float:
        """Spend a token from every bucket, or from none when one is empty; returns as ``take`` (the longest wait)."""
        with self._lock:
            now = self._clock()
            tokens = {key: self._tokens(key, now, scale) for key, scale in buckets.items()}
            wait_s = max((1 - tokens[key]) / (self.rate_per_s * scale) for key, scale in buckets.items())
            if wait_s > 0:
                return wait_s
            for key, scale in buckets.items():
                self._buckets[key] = (tokens[key] - 1, now, scale)
            if len(self._buckets) > self._prune_above:
                self._prune(now)
            return 0.0

    def give_back(self, buckets: Buckets) -> None:
        """Return the tokens ``take_all`` spent (for attempts that turned out not to count)."""
        with self._lock:
            now = self._clock()
            for key, scale in buckets.items():
                self._buckets[key] = (min(self.capacity * scale, self._tokens(key, now, scale) + 1), now, scale)

    def _prune(self, now: float) -> None:
        full = [k for k, (_, _, scale) in self._buckets.items() if self._tokens(k, now, scale) >= self.capacity * scale]
        for key in full:
            del self._buckets[key]

    def check(self, key: str, what: str) -> None:
        """Spend a token or raise ``RateLimitedError``."""
        self.check_all({key: 1}, what)

    def check_all(self, buckets: Buckets, what: str) -> None:
        """Spend a token from every bucket or raise ``RateLimitedError`` (spending none)."""
        _raise_if_waiting(self.take_all(buckets), what)


def _raise_if_waiting(wait_s: float, what: str) -> None:
    if wait_s:
        raise RateLimitedError(f"too many {what}; retry in {math.ceil(wait_s)} s", retry_after_s=wait_s)


def per_minute(limit: int, burst: int | None = None) -> TokenBucketLimiter:
    """``limit`` per minute on average, ``burst`` (default: ``limit``) at once."""
    return TokenBucketLimiter(rate_per_s=limit / 60.0, capacity=burst or limit)
