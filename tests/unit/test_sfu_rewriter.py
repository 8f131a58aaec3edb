"""Sequence number / timestamp rewriting of one outbound stream (`Wire.rewrite`, media/sfu/_wire.c)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from media.sfu.wire import Wire
from tests.unit.sfu_rewriter_model import SequenceRewriter as Model


def test_the_first_source_continues_from_the_chosen_start_and_keeps_its_spacing():
    rw = Wire(1024, 1000, 5000)  # unconnected: its rewriting step works alone
    out = [rw.rewrite(40_000 + i, 90_000 + 3000 * i, 0) for i in range(3)]
    assert [o for o in out if o] == [(1000, 5000), (1001, 8000), (1002, 11000)]


def test_sequence_numbers_and_timestamps_wrap_around():
    rw = Wire(1024, 65534, (1 << 32) - 3000)
    out = [rw.rewrite(10 + i, 0 + 3000 * i, 0) for i in range(4)]
    assert [o[0] for o in out if o] == [65534, 65535, 0, 1]
    assert [o[1] for o in out if o] == [(1 << 32) - 3000, 0, 3000, 6000]


def test_a_new_source_continues_the_stream_by_one_and_after_the_gap():
    rw = Wire(1024, 100, 0)
    for i in range(5):
        rw.rewrite(7000 + i, 3000 * i, 0)
    rw.switch_source()
    first = rw.rewrite(123, 999_999, 4500)
    second = rw.rewrite(124, 999_999 + 3000, 4500)
    assert first is not None and second is not None
    assert first == (105, 12000 + 4500)
    assert second == (106, 12000 + 4500 + 3000)


def test_a_switch_right_at_the_wrap_continues_through_zero():
    rw = Wire(1024, 65535, 0)
    rw.rewrite(1, 0, 0)
    rw.switch_source()
    out = rw.rewrite(50_000, 10, 1)
    assert out is not None and out[0] == 0


def test_reordered_and_retransmitted_packets_of_the_current_source_keep_their_place():
    rw = Wire(1024, 10, 0)
    a = rw.rewrite(500, 0, 0)
    c = rw.rewrite(502, 6000, 0)
    b = rw.rewrite(501, 3000, 0)
    assert a and b and c
    assert (a[0], b[0], c[0]) == (10, 11, 12)
    rw.switch_source()
    assert rw.rewrite(900, 0, 1)[0] == 13  # type: ignore[union-attr]


def test_packets_older_than_the_start_of_the_current_source_are_dropped():
    rw = Wire(1024, 0, 0)
    rw.rewrite(1000, 0, 0)
    assert rw.rewrite(999, 0, 0) is None
    assert rw.rewrite(1001, 0, 0) is not None


def test_a_long_stream_keeps_flowing_past_half_the_sequence_space():
    """Regression: the floor was fixed at the first packet, so packets 32768…65535 of every source
    were dropped as "older" (three minutes of video froze for three more minutes)."""
    rw = Wire(1024, 100, 0)
    out = [rw.rewrite((5000 + i) % 65536, (3000 * i) % (1 << 32), 0) for i in range(140_000)]
    assert all(o is not None for o in out)
    assert [o[0] for o in out[-3:] if o] == [(100 + i) % 65536 for i in range(139_997, 140_000)]


def test_a_late_packet_far_behind_a_long_stream_is_dropped_not_sent_with_a_stale_number():
    rw = Wire(1024, 0, 0)
    for i in range(40_000):
        rw.rewrite(i % 65536, 0, 0)
    assert rw.rewrite((40_000 - 20_000) % 65536, 0, 0) is None  # 20 000 packets late
    assert rw.rewrite(39_990, 0, 0) is not None  # a little late: keeps its place


def test_a_source_whose_numbers_jump_backwards_is_remapped_after_a_burst_of_drops():
    rw = Wire(1024, 10, 0)
    for i in range(100):
        last = rw.rewrite(30_000 + i, 3000 * i, 0)
    assert last is not None
    jumped = [rw.rewrite(20_000 + i, 300_000 + 3000 * i, 3000) for i in range(70)]
    assert jumped[0] is None and jumped[-1] is not None  # dropped at first, then a new mapping
    first_after = next(o for o in jumped if o is not None)
    assert first_after[0] == (last[0] + 1) % 65536


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("switch")),
        st.tuples(
            st.just("packet"),
            st.integers(-300, 40_000),  # a jump or step of the source's sequence number
            st.integers(0, (1 << 32) - 1),
            st.integers(-10, 1 << 40),  # the gap a new source follows (never below 1 once started)
        ),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(first_seq=st.integers(0, 65535), first_ts=st.integers(0, (1 << 32) - 1), steps=_steps)
def test_the_c_rewriter_maps_every_packet_as_the_python_model_does(first_seq, first_ts, steps):
    """The model is the rewriter the SFU ran in Python before (tests/unit/sfu_rewriter_model.py)."""
    wire, model = Wire(64, first_seq, first_ts), Model(first_seq, first_ts)
    seq = 0
    for step in steps:
        if step[0] == "switch":
            wire.switch_source()
            model.switch_source()
        else:
            _, delta, ts, gap = step
            seq = (seq + delta) % 65536
            assert wire.rewrite(seq, ts, gap) == model.rewrite(seq, ts, gap)
        assert wire.mapped == model.has_source_mapping
