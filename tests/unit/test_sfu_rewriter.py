"""Sequence number / timestamp rewriting of one outbound stream (media.sfu.rewriter)."""

from __future__ import annotations

from media.sfu.rewriter import SequenceRewriter, seq_newer


def test_the_first_source_continues_from_the_chosen_start_and_keeps_its_spacing():
    rw = SequenceRewriter(first_sequence_number=1000, first_timestamp=5000)
    out = [rw.rewrite(40_000 + i, 90_000 + 3000 * i, ts_gap=0) for i in range(3)]
    assert [(o.sequence_number, o.timestamp) for o in out if o] == [(1000, 5000), (1001, 8000), (1002, 11000)]


def test_sequence_numbers_and_timestamps_wrap_around():
    rw = SequenceRewriter(first_sequence_number=65534, first_timestamp=(1 << 32) - 3000)
    out = [rw.rewrite(10 + i, 0 + 3000 * i, ts_gap=0) for i in range(4)]
    assert [o.sequence_number for o in out if o] == [65534, 65535, 0, 1]
    assert [o.timestamp for o in out if o] == [(1 << 32) - 3000, 0, 3000, 6000]


def test_a_new_source_continues_the_stream_by_one_and_after_the_gap():
    rw = SequenceRewriter(first_sequence_number=100, first_timestamp=0)
    for i in range(5):
        rw.rewrite(7000 + i, 3000 * i, ts_gap=0)
    rw.switch_source()
    first = rw.rewrite(123, 999_999, ts_gap=4500)
    second = rw.rewrite(124, 999_999 + 3000, ts_gap=4500)
    assert first is not None and second is not None
    assert (first.sequence_number, first.timestamp) == (105, 12000 + 4500)
    assert (second.sequence_number, second.timestamp) == (106, 12000 + 4500 + 3000)


def test_a_switch_right_at_the_wrap_continues_through_zero():
    rw = SequenceRewriter(first_sequence_number=65535, first_timestamp=0)
    rw.rewrite(1, 0, ts_gap=0)
    rw.switch_source()
    out = rw.rewrite(50_000, 10, ts_gap=1)
    assert out is not None and out.sequence_number == 0


def test_reordered_and_retransmitted_packets_of_the_current_source_keep_their_place():
    rw = SequenceRewriter(first_sequence_number=10, first_timestamp=0)
    a = rw.rewrite(500, 0, ts_gap=0)
    c = rw.rewrite(502, 6000, ts_gap=0)
    b = rw.rewrite(501, 3000, ts_gap=0)
    assert a and b and c
    assert (a.sequence_number, b.sequence_number, c.sequence_number) == (10, 11, 12)
    rw.switch_source()
    assert rw.rewrite(900, 0, ts_gap=1).sequence_number == 13  # type: ignore[union-attr]


def test_packets_older_than_the_start_of_the_current_source_are_dropped():
    rw = SequenceRewriter(first_sequence_number=0, first_timestamp=0)
    rw.rewrite(1000, 0, ts_gap=0)
    assert rw.rewrite(999, 0, ts_gap=0) is None
    assert rw.rewrite(1001, 0, ts_gap=0) is not None


def test_seq_newer_follows_rfc3550_wraparound():
    assert seq_newer(1, 0) and seq_newer(0, 65535) and not seq_newer(65535, 0) and not seq_newer(5, 5)


def test_a_long_stream_keeps_flowing_past_half_the_sequence_space():
    """Regression: the floor was fixed at the first packet, so packets 32768…65535 of every source
    were dropped as "older" (three minutes of video froze for three more minutes)."""
    rw = SequenceRewriter(first_sequence_number=100, first_timestamp=0)
    out = [rw.rewrite((5000 + i) % 65536, (3000 * i) % (1 << 32), ts_gap=0) for i in range(140_000)]
    assert all(o is not None for o in out)
    assert [o.sequence_number for o in out[-3:] if o] == [(100 + i) % 65536 for i in range(139_997, 140_000)]


def test_a_late_packet_far_behind_a_long_stream_is_dropped_not_sent_with_a_stale_number():
    rw = SequenceRewriter(first_sequence_number=0, first_timestamp=0)
    for i in range(40_000):
        rw.rewrite(i % 65536, 0, ts_gap=0)
    assert rw.rewrite((40_000 - 20_000) % 65536, 0, ts_gap=0) is None  # 20 000 packets late
    assert rw.rewrite(39_990, 0, ts_gap=0) is not None  # a little late: keeps its place


def test_a_source_whose_numbers_jump_backwards_is_remapped_after_a_burst_of_drops():
    rw = SequenceRewriter(first_sequence_number=10, first_timestamp=0)
    for i in range(100):
        last = rw.rewrite(30_000 + i, 3000 * i, ts_gap=0)
    assert last is not None
    jumped = [rw.rewrite(20_000 + i, 300_000 + 3000 * i, ts_gap=3000) for i in range(70)]
    assert jumped[0] is None and jumped[-1] is not None  # dropped at first, then a new mapping
    first_after = next(o for o in jumped if o is not None)
    assert first_after.sequence_number == (last.sequence_number + 1) % 65536
