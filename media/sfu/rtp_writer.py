"""Serializing forwarded RTP packets in one step, for one outbound stream.

aiortc's `RtpPacket.serialize()` rebuilds the header extensions from a `HeaderExtensions` object
for every packet (about 5 µs, plus the allocation of an `RtpPacket`). A forwarded packet always
carries the same extensions on a given stream: the sender's mid, a fresh abs-send-time and, for
audio, the publisher's RFC 6464 level. `RtpWriter` fixes the SSRC, the mid and the extension ids
once and then writes a packet with one `struct.pack` and two concatenations, byte for byte what
aiortc's serializer writes (tests/unit/test_sfu_hooks.py compares the two).

Wire format (RFC 3550 §5.1, RFC 8285 §4.2 one-byte header extensions): the 12-byte header, then
0xBEDE, the extension length in 32-bit words, the elements (mid, abs-send-time, audio level, in
aiortc's order) padded with zeros to a word, then the payload. Extension ids above 14 or a mid
longer than 16 bytes need the two-byte form, which aiortc would also pick: `RtpWriter.supports`
says no, and the caller serializes with aiortc instead.
"""

from __future__ import annotations

import struct

_HEADER = struct.Struct("!BBHLLHH")  # RTP fixed header without CSRCs + extension profile and length
_PLAIN_HEADER = struct.Struct("!BBHLL")
_WORD = struct.Struct("!L")
_ONE_BYTE_PROFILE = 0xBEDE
_MAX_ONE_BYTE_ID = 14


class RtpWriter:
    """Writes the RTP packets of one stream: SSRC, mid and extension ids fixed (0 = not negotiated)."""

    def __init__(self, ssrc: int, mid: str | None, mid_id: int, abs_send_time_id: int, audio_level_id: int) -> None:
        if not self.supports(mid, mid_id, abs_send_time_id, audio_level_id):
            raise ValueError("these extensions need the two-byte header form")
        self.ssrc = ssrc
        mid_bytes = mid.encode("utf8") if mid is not None and mid_id else b""
        self._mid_element = bytes([(mid_id << 4) | (len(mid_bytes) - 1)]) + mid_bytes if mid_bytes else b""
        self._abs_send_time_tag = (abs_send_time_id << 28) | (2 << 24) if abs_send_time_id else None
        self._audio_level_tag = audio_level_id << 4 if audio_level_id else None

    @staticmethod
    def supports(mid: str | None, mid_id: int, abs_send_time_id: int, audio_level_id: int) -> bool:
        """True when the one-byte extension header form fits these ids (what aiortc would choose)."""
        ids_fit = all(0 <= i <= _MAX_ONE_BYTE_ID for i in (mid_id, abs_send_time_id, audio_level_id))
        mid_fits = mid is None or not mid_id or 1 <= len(mid.encode("utf8")) <= 16
        return ids_fit and mid_fits

    def write(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        abs_send_time: int,
        audio_level: tuple[bool, int] | None,
    ) -> bytes:
        """One serialized packet (plaintext RTP, ready for SRTP)."""
        elements = self._mid_element
        if self._abs_send_time_tag is not None:
            elements += _WORD.pack(self._abs_send_time_tag | abs_send_time)
        if audio_level is not None and self._audio_level_tag is not None:
            vad, level = audio_level
            elements += bytes([self._audio_level_tag, (0x80 if vad else 0) | (level & 0x7F)])
        second = (marker << 7) | payload_type
        if not elements:
            return _PLAIN_HEADER.pack(0x80, second, sequence_number, timestamp, self.ssrc) + payload
        padding = -len(elements) % 4
        if padding:
            elements += b"\x00" * padding
        head = _HEADER.pack(0x90, second, sequence_number, timestamp, self.ssrc, _ONE_BYTE_PROFILE, len(elements) >> 2)
        return head + elements + payload
