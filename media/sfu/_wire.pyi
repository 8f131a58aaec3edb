"""Type stubs of the C extension media/sfu/_wire.c (see its header comment and media/sfu/wire.py)."""

from typing import Any

class Wire:
    packets_sent: int
    last_length: int
    dropped: int
    @property
    def mapped(self) -> bool: ...
    def __init__(self, history_size: int, first_sequence_number: int, first_timestamp: int) -> None: ...
    def connect(
        self,
        ssrc: int,
        mid_element: bytes,
        abs_send_time_id: int,
        audio_level_id: int,
        session: Any,
        context: int,
        protect: int,
        max_length: int,
        counters: tuple[Any, ...],
        /,
    ) -> None: ...
    def aim(self, socket: Any | None, host: str, port: int, /) -> None: ...
    def forward(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        ntp: int,
        audio_level: tuple[bool, int] | None,
        now: float,
        clock_rate: int,
        /,
    ) -> bool: ...
    def rewrite(self, sequence_number: int, timestamp: int, ts_gap: int, /) -> tuple[int, int] | None: ...
    def switch_source(self) -> None: ...
    def write(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        abs_send_time: int,
        audio_level: tuple[bool, int] | None,
        /,
    ) -> bytes: ...
    def history(self, sequence_number: int, /) -> bytes | None: ...
