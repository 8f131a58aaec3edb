"""The retransmission history of one outbound RTP stream.

aiortc's own sender keeps 128 packets (`aiortc.rtp.RTP_HISTORY_SIZE`), about 0.6 s of 360p video:
too short for a keyframe burst at a high RTT. This ring keeps a configurable number of packets,
indexed by the outbound sequence number, and answers NACKs from it. The SFU keeps the serialized
plaintext packets (`bytes`): storing them allocates nothing the garbage collector must track.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class RetransmissionHistory(Generic[T]):
    """The last `size` sent packets, looked up by their 16-bit sequence number."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"history size must be positive, got {size}")
        self._size = size
        self._numbers: list[int] = [-1] * size
        self._packets: list[T | None] = [None] * size

    @property
    def size(self) -> int:
        return self._size

    def put(self, sequence_number: int, packet: T) -> None:
        """Remember `packet`, sent with `sequence_number`; evicts the packet `size` numbers before it."""
        index = sequence_number % self._size
        self._numbers[index] = sequence_number
        self._packets[index] = packet

    def get(self, sequence_number: int) -> T | None:
        """The packet sent with `sequence_number`, if still held."""
        index = sequence_number % self._size
        if self._numbers[index] != sequence_number:
            return None
        return self._packets[index]
