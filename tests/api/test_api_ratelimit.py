"""Token buckets with a hand-driven clock."""

from __future__ import annotations

import pytest

from watchkeeper.auth.ratelimit import TokenBucketLimiter
from watchkeeper.errors import RateLimitedError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate():
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=2.0, capacity=3, clock=clock)
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(0.5)
    assert limiter.take("other") == 0.0  # keys have their own buckets
    clock.now += 0.5
    assert limiter.take("k") == 0.0
    clock.now += 100
    assert [limiter.take("k") for _ in range(4)][-1] > 0  # refills to capacity, not beyond


def test_check_raises_with_the_wait_and_buckets_spent_together_spend_all_or_none():
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=1.0, capacity=1, clock=clock)
    limiter.check("k", "tries")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("k", "tries")
    assert caught.value.retry_after_s == pytest.approx(1.0) and "too many tries" in str(caught.value)
    # "wide" holds three tokens; "k" is empty, so nothing is spent from "wide" either.
    with pytest.raises(RateLimitedError):
        limiter.check_all({"k": 1, "wide": 3}, "tries")
    assert [limiter.take_all({"wide": 3}) for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(1 / 3)]
    limiter.give_back({"wide": 3})
    assert limiter.take_all({"wide": 3}) == 0.0


def test_full_buckets_are_pruned():
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=10.0, capacity=1, clock=clock, prune_above=5)
    for i in range(5):
        limiter.take(f"k{i}")
    clock.now += 1
    limiter.take("last")
    assert len(limiter) == 1
