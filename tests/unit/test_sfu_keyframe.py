"""Keyframe detection on real VP8 payloads (made by aiortc's own VP8 encoder) and H.264 shapes."""

from __future__ import annotations

import fractions

from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame

from media.sfu.keyframe import is_h264_keyframe_start, is_keyframe_start, is_vp8_keyframe_start


def vp8_frames(count: int, keyframe_at: set[int]) -> list[list[bytes]]:
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97))
    out = []
    for i in range(count):
        frame = VideoFrame(width=320, height=240, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7 + 30) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=i in keyframe_at)
        out.append(payloads)
    return out


def test_only_the_first_packet_of_a_vp8_keyframe_is_a_start():
    frames = vp8_frames(5, keyframe_at={3})
    assert is_vp8_keyframe_start(frames[0][0])  # the encoder's first frame is a keyframe
    assert is_vp8_keyframe_start(frames[3][0])  # forced keyframe
    assert not any(is_vp8_keyframe_start(p) for p in frames[1] + frames[2] + frames[4])
    assert not any(is_vp8_keyframe_start(p) for p in frames[0][1:] + frames[3][1:])
    assert is_keyframe_start("video/VP8", frames[3][0])


def test_h264_idr_sps_stap_a_and_fu_a_starts_are_keyframes():
    assert is_h264_keyframe_start(bytes([0x65, 0x88]))  # IDR
    assert is_h264_keyframe_start(bytes([0x67, 0x42]))  # SPS
    assert not is_h264_keyframe_start(bytes([0x41, 0x9A]))  # non-IDR slice
    stap_a = bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    assert is_h264_keyframe_start(stap_a)
    assert is_h264_keyframe_start(bytes([0x7C, 0x85, 0x00]))  # FU-A start of IDR
    assert not is_h264_keyframe_start(bytes([0x7C, 0x05, 0x00]))  # FU-A middle of IDR


def test_audio_packets_are_always_a_valid_start():
    assert is_keyframe_start("audio/opus", b"\x78")
    assert not is_keyframe_start("video/AV1", b"\x00")
