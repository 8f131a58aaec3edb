"""Keyframe detection from RTP payloads, without decoding.

A subscriber that joins (or whose source changes) must start on a keyframe, so the forwarder
looks at the first bytes of each payload:

* VP8 (RFC 7741 §4.2–4.3): the payload descriptor's S bit and PID = 0 mark the start of the
  first partition; after the optional extension bytes, the VP8 payload header's P bit is 0 for a
  key frame (the "inverse key frame" flag).
* H.264 (RFC 6184 §5.6–5.8): an IDR slice (NAL type 5), or an SPS (type 7) that browsers send
  right before the IDR, either as a single NAL unit, inside a STAP-A aggregate (type 24), or as
  the first fragment of an FU-A (type 28, S bit set).

Other codecs (Opus, ...) have no keyframes: every packet is a valid start.
"""

from __future__ import annotations

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True when `payload` (a VP8 RTP payload) is the first packet of a key frame."""
    if len(payload) < 1:
        return False
    first = payload[0]
    start_of_partition = bool(first & 0x10)
    partition_id = first & 0x07
    if not start_of_partition or partition_id != 0:
        return False
    offset = 1
    if first & 0x80:  # X: extension byte present
        if len(payload) < 2:
            return False
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            offset += 1
    if len(payload) <= offset:
        return False
    return payload[offset] & 0x01 == 0  # P = 0: key frame


def is_h264_keyframe_start(payload: bytes) -> bool:
    """True when `payload` (an H.264 RTP payload) starts an IDR picture or carries its SPS."""
    if len(payload) < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (_H264_IDR, _H264_SPS):
        return True
    if nal_type == _H264_STAP_A:
        offset = 1
        while offset + 2 < len(payload):
            size = int.from_bytes(payload[offset : offset + 2], "big")
            if size == 0:
                return False
            if payload[offset + 2] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            offset += 2 + size
        return False
    if nal_type == _H264_FU_A and len(payload) >= 2:
        fu_header = payload[1]
        return bool(fu_header & 0x80) and fu_header & 0x1F in (_H264_IDR, _H264_SPS)
    return False


def is_keyframe_start(mime_type: str, payload: bytes) -> bool:
    """True when a decoder can start at this packet: a keyframe start for video, always for audio."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return is_vp8_keyframe_start(payload)
    if mime == "video/h264":
        return is_h264_keyframe_start(payload)
    return not mime.startswith("video/")
