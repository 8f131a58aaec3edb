"""Sequence number and timestamp rewriting for one outbound RTP stream.

A subscriber's sender keeps one SSRC for its whole life, but the packets it carries may come
from several sources in turn (a recycled transceiver, a publisher that reconnected). The
subscriber must see one stream: sequence numbers that continue by +1 and timestamps that keep
increasing. Each source gets its own offsets, chosen when its first packet is forwarded:

* `out_seq = in_seq + seq_offset (mod 2^16)`, so the first packet continues after the highest
  sequence number sent so far; gaps and reordering within a source are preserved, which keeps
  NACKs meaningful;
* `out_ts = in_ts + ts_offset (mod 2^32)`, so the first packet's timestamp follows the last one
  sent by `ts_gap` ticks (the caller passes the wall-clock gap in clock-rate units).

A packet older than the first forwarded packet of the current source is dropped: its number
would fall before the switch and collide with the previous source's numbers. That floor follows
the source at a distance of `_FLOOR_LAG` packets, so a long stream is never mistaken for an old
one once its numbers are half the sequence space past the first (a floor fixed at the first
packet dropped packets 32768 to 65535 of every source: three minutes of video). A source whose
numbers jump (`_JUMP_DROPS` packets in a row below the floor) is taken as a new source.
"""

from __future__ import annotations

from typing import NamedTuple

_SEQ_MOD = 1 << 16
_SEQ_HALF = 1 << 15
_TS_MOD = 1 << 32
_FLOOR_LAG = 1 << 14  # how far behind the newest packet of a source the "too old" floor is kept
_JUMP_DROPS = 64  # packets in a row below the floor that mean the source jumped


def seq_newer(a: int, b: int) -> bool:
    """True when 16-bit sequence number `a` comes after `b` (RFC 3550 wrap-around arithmetic)."""
    return a != b and (a - b) % _SEQ_MOD < _SEQ_MOD // 2


class Rewritten(NamedTuple):
    """The outbound numbers of one packet (a tuple: made for every forwarded packet)."""

    sequence_number: int
    timestamp: int


class SequenceRewriter:
    """Maps the (sequence number, timestamp) of successive sources into one continuous stream."""

    def __init__(self, first_sequence_number: int, first_timestamp: int) -> None:
        self._highest_seq = (first_sequence_number - 1) % _SEQ_MOD
        self._highest_ts = (first_timestamp - 1) % _TS_MOD
        self._started = False  # any packet sent at all
        self._mapping: tuple[int, int] | None = None  # (seq_offset, ts_offset) of the current source
        self._floor = 0  # inbound numbers older than this are dropped
        self._below_floor = 0  # consecutive packets dropped for being older than the floor

    def switch_source(self) -> None:
        """The next packet starts a new source: new offsets will be chosen for it."""
        self._mapping = None

    @property
    def has_source_mapping(self) -> bool:
        """True once a packet of the current source has been rewritten."""
        return self._mapping is not None

    def rewrite(self, sequence_number: int, timestamp: int, ts_gap: int) -> Rewritten | None:
        """The outbound numbers for an inbound packet, or None to drop it.

        `ts_gap` is used only when this packet starts a new source: the number of timestamp
        ticks between the last packet sent and this one (at least 1).
        """
        mapping = self._mapping
        if mapping is None:
            mapping = self._map(sequence_number, timestamp, ts_gap)
        ahead = (sequence_number - self._floor) % _SEQ_MOD
        if ahead >= _SEQ_HALF:  # older than the floor
            self._below_floor += 1
            if self._below_floor < _JUMP_DROPS:
                return None
            mapping = self._map(sequence_number, timestamp, ts_gap)
        elif ahead > _FLOOR_LAG:
            self._floor = (sequence_number - _FLOOR_LAG) % _SEQ_MOD
        self._below_floor = 0
        out_seq = (sequence_number + mapping[0]) % _SEQ_MOD
        out_ts = (timestamp + mapping[1]) % _TS_MOD
        if not self._started or 0 < (out_seq - self._highest_seq) % _SEQ_MOD < _SEQ_HALF:
            self._highest_seq = out_seq
            self._highest_ts = out_ts
        self._started = True
        return Rewritten(out_seq, out_ts)

    def _map(self, sequence_number: int, timestamp: int, ts_gap: int) -> tuple[int, int]:
        """Offsets that make this packet follow the last one sent."""
        seq_offset = (self._highest_seq + 1 - sequence_number) % _SEQ_MOD
        ts_step = max(1, ts_gap) if self._started else 1
        ts_offset = (self._highest_ts + ts_step - timestamp) % _TS_MOD
        self._mapping = (seq_offset, ts_offset)
        self._floor = sequence_number
        self._below_floor = 0
        return self._mapping
