"""The model of the SFU's sequence number and timestamp rewriting: the Python rewriter the SFU ran
before the step moved into C (media/sfu/_wire.c, whose header comment says what it does and
why). tests/unit/test_sfu_rewriter.py checks the C rewriter against it packet by packet.
"""

from __future__ import annotations

_SEQ_MOD = 1 << 16
_SEQ_HALF = 1 << 15
_TS_MOD = 1 << 32
_FLOOR_LAG = 1 << 14  # how far behind the newest packet of a source the "too old" floor is kept
_JUMP_DROPS = 64  # packets in a row below the floor that mean the source jumped


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

    def rewrite(self, sequence_number: int, timestamp: int, ts_gap: int) -> tuple[int, int] | None:
        """The outbound (sequence number, timestamp) of an inbound packet, or None to drop it.

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
        return out_seq, out_ts

    def _map(self, sequence_number: int, timestamp: int, ts_gap: int) -> tuple[int, int]:
        """Offsets that make this packet follow the last one sent."""
        seq_offset = (self._highest_seq + 1 - sequence_number) % _SEQ_MOD
        ts_step = max(1, ts_gap) if self._started else 1
        ts_offset = (self._highest_ts + ts_step - timestamp) % _TS_MOD
        self._mapping = (seq_offset, ts_offset)
        self._floor = sequence_number
        self._below_floor = 0
        return self._mapping
