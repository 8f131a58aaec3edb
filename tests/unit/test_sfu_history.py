"""The retransmission history of one outbound stream (media.sfu.history)."""

from __future__ import annotations

import pytest

from media.sfu.history import RetransmissionHistory


def test_a_sent_packet_is_found_by_its_sequence_number_until_size_newer_ones_replace_it():
    history: RetransmissionHistory[bytes] = RetransmissionHistory(4)
    for seq in range(10, 14):
        history.put(seq, b"p%d" % seq)
    assert [history.get(seq) for seq in range(10, 14)] == [b"p10", b"p11", b"p12", b"p13"]
    history.put(14, b"p14")
    assert history.get(10) is None and history.get(14) == b"p14"


def test_a_number_never_sent_is_not_answered_with_the_packet_in_its_slot():
    history: RetransmissionHistory[bytes] = RetransmissionHistory(4)
    history.put(65535, b"last")
    history.put(0, b"wrapped")
    assert history.get(65535) == b"last" and history.get(0) == b"wrapped"
    assert history.get(3) is None and history.get(4) is None  # 4 and 0 share a slot
    assert RetransmissionHistory[bytes](8).get(0) is None  # empty


def test_the_size_must_be_positive():
    with pytest.raises(ValueError):
        RetransmissionHistory[bytes](0)
