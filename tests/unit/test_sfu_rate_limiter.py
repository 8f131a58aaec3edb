"""The keyframe-request rate limiter and the retransmission history."""

from __future__ import annotations

import pytest

from media.sfu.history import RetransmissionHistory
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


def test_the_history_answers_for_the_last_size_packets_only():
    history: RetransmissionHistory[str] = RetransmissionHistory(1024)
    for seq in range(2000, 2000 + 1024):
        history.put(seq % 65536, f"p{seq}")
    assert history.get(2000) == "p2000"
    history.put(3024, "p3024")
    assert history.get(2000) is None
    assert history.get(3024) == "p3024"
    assert history.get(1999) is None


def test_the_history_is_longer_than_aiortcs_and_refuses_no_size():
    from aiortc.rtp import RTP_HISTORY_SIZE

    from media.sfu.config import SfuConfig

    assert SfuConfig().history_size > RTP_HISTORY_SIZE
    with pytest.raises(ValueError):
        RetransmissionHistory(0)
