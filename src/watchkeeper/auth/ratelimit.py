"""Token buckets per key (an API key, a session, an address and login name), in process memory."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..errors import RateLimitedError


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
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Keys holding state (a bucket below capacity)."""
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate_per_s)

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may spend a token; 0 when it may now. Spends nothing."""
        with self._lock:
            tokens = self._tokens(key, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate_per_s

    def take(self, key: str) -> float:
        """Spend a token; returns 0 when there was one, else the seconds until there will be (nothing spent)."""
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            if tokens < 1:
                return (1 - tokens) / self.rate_per_s
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > self._prune_above:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        full = [k for k in self._buckets if self._tokens(k, now) >= self.capacity]
        for key in full:
            del self._buckets[key]

    def check(self, key: str, what: str) -> None:
        """Spend a token or raise ``RateLimitedError``."""
        _raise_if_waiting(self.take(key), what)

    def check_available(self, key: str, what: str) -> None:
        """Raise ``RateLimitedError`` when ``key`` has no token left; spends nothing (failures spend, later)."""
        _raise_if_waiting(self.retry_after(key), what)


def _raise_if_waiting(wait_s: float, what: str) -> None:
    if wait_s:
        raise RateLimitedError(f"too many {what}; retry in {math.ceil(wait_s)} s", retry_after_s=wait_s)


def per_minute(limit: int, burst: int | None = None) -> TokenBucketLimiter:
    """``limit`` per minute on average, ``burst`` (default: ``limit``) at once."""
    return TokenBucketLimiter(rate_per_s=limit / 60.0, capacity=burst or limit)
