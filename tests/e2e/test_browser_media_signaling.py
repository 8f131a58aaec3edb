"""Dominant speaker and network quality in group rooms, as twilio-video apps use them.

The pages connect with `dominantSpeaker: true` and `networkQuality: {local: 1, remote: 1}`; the
SFU opens the media-signaling channels, picks the dominant speaker from the RFC 6464 audio levels
of the published audio (Chromium's fake microphone beeps; a disabled track sends silence), and
answers each page's network-quality reports with its level and the others'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.browser_room import AUDIO_AND_VIDEO, TIMEOUT_MS, connect, wait_log

SIGNALS = {**AUDIO_AND_VIDEO, "dominantSpeaker": True, "networkQuality": {"local": 1, "remote": 1}}
WATCH = """() => {
  window.room.on('dominantSpeakerChanged', (p) => window.log.push(`dominantSpeaker:${p ? p.identity : 'none'}`));
}"""
DOMINANT = "(identity) => window.room.dominantSpeaker && window.room.dominantSpeaker.identity === identity"


def test_the_dominant_speaker_is_the_participant_whose_microphone_is_on(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(), sdk_pages()
    assert connect(alice, running_service, "alice", "talk", SIGNALS)["connected"]
    alice.evaluate(WATCH)
    assert connect(bob, running_service, "bob", "talk", SIGNALS)["connected"]
    bob.evaluate(WATCH)
    bob.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")

    bob.wait_for_function(DOMINANT, arg="alice", timeout=TIMEOUT_MS)  # `dominantSpeaker` is always a remote one

    alice.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")
    bob.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.enable())")

    wait_log(alice, "dominantSpeaker:bob")
    alice.wait_for_function(DOMINANT, arg="bob", timeout=TIMEOUT_MS)


def test_network_quality_levels_reach_each_page_for_itself_and_the_others(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(), sdk_pages()
    a = connect(alice, running_service, "alice", "quality", SIGNALS)
    b = connect(bob, running_service, "bob", "quality", SIGNALS)
    assert a["connected"] and b["connected"]

    # On loopback nothing is lost and round trips are short: the best level, 5.
    alice.wait_for_function("window.room.localParticipant.networkQualityLevel === 5", timeout=TIMEOUT_MS)
    bob.wait_for_function("window.room.localParticipant.networkQualityLevel === 5", timeout=TIMEOUT_MS)
    remote = "(sid) => { const p = window.room.participants.get(sid); return p && p.networkQualityLevel === 5; }"
    alice.wait_for_function(remote, arg=b["participantSid"], timeout=TIMEOUT_MS)
    bob.wait_for_function(remote, arg=a["participantSid"], timeout=TIMEOUT_MS)
