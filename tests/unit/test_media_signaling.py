"""The media-signaling (MSP) channels of one participant (media/session/media_signaling.py)."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from domain.ids import ParticipantSid
from media.session.media_signaling import MediaSignaling


async def test_a_message_on_a_channel_not_open_yet_is_not_sent_and_a_ready_asks_for_the_speaker_again():
    signals = MediaSignaling(ParticipantSid("PA" + "1" * 32), ["active_speaker"], lambda *a: None, lambda *a: [])
    pc = RTCPeerConnection()
    try:
        assert signals.open(pc)  # no SCTP transport yet: the PeerConnection needs an offer
        assert not signals.send("active_speaker", {"type": "active_speaker", "participant": "PA" + "2" * 32})
        assert not signals.send("network_quality", {"type": "network_quality"})  # not granted
        signals.speaker_told = True
        signals._on_message("active_speaker", '{"type": "ready"}')  # the client set its transport up (again)
        assert signals.speaker_ready and not signals.speaker_told
    finally:
        signals.close()
        await pc.close()
