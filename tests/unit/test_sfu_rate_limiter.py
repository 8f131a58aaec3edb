"""The keyframe-request rate limiter."""

from __future__ import annotations

from media.sfu.rate_limiter import RateLimiter


def test_one_request_per_interval_passes():
    now = [100.0]
    limiter = RateLimiter(0.5, clock=lambda: now[0])
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    now[0] += 0.49
    assert not limiter.try_acquire()
    now[0] += 0.01
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
