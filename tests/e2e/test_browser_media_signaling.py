"""Dominant speaker, network quality and track switch-off in group rooms, as twilio-video apps use them.

The pages connect with `dominantSpeaker: true` and `networkQuality: {local: 1, remote: 1}`; the
SFU opens the media-signaling channels, picks the dominant speaker from the RFC 6464 audio levels
of the published audio (Chromium's fake microphone beeps; a disabled track sends silence), and
answers each page's network-quality reports with its level and the others', and switches a
subscriber's video off and on as its render hints ask (bandwidth profile, manual control).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.browser_room import AUDIO_AND_VIDEO, TIMEOUT_MS, connect, wait_log, wait_media_grows

SIGNALS = {**AUDIO_AND_VIDEO, "dominantSpeaker": True, "networkQuality": {"local": 1, "remote": 1}}
WATCH = """() => {
  window.room.on('dominantSpeakerChanged', (p) => window.log.push(`dominantSpeaker:${p ? p.identity : 'none'}`));
}"""
SENT_SAMPLER = """() => {
  window.sent = 0;
  setInterval(async () => {
    const reports = await window.room.getStats();
    window.sent = reports.flatMap((r) => r.localVideoTrackStats).reduce((n, s) => n + (s.packetsSent || 0), 0);
  }, 100);
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


def test_a_subscriber_switches_a_video_off_and_on_with_a_bandwidth_profile(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(), sdk_pages()
    manual = {**AUDIO_AND_VIDEO, "bandwidthProfile": {"video": {"clientTrackSwitchOffControl": "manual"}}}
    assert connect(alice, running_service, "alice", "profile", AUDIO_AND_VIDEO)["connected"]
    assert connect(bob, running_service, "bob", "profile", manual)["connected"]
    wait_media_grows(bob, "alice")
    video = "Array.from(window.room.participants.values())[0].videoTracks.values().next().value.track"
    bob.evaluate(f"""() => {{
      const track = {video};
      track.on('switchedOff', () => window.log.push('switchedOff'));
      track.on('switchedOn', () => window.log.push('switchedOn'));
      track.switchOff();
    }}""")

    wait_log(bob, "switchedOff")
    assert bob.evaluate(f"{video}.isSwitchedOff") is True
    # The SFU really stops: while alice sends 60 more video packets, bob decodes (almost) no frame.
    frames_at_switch_off = bob.evaluate("window.media.alice.frames")
    alice.evaluate(SENT_SAMPLER)
    alice.wait_for_function("window.sent > 0", timeout=TIMEOUT_MS)
    start = alice.evaluate("window.sent")
    alice.wait_for_function("(n) => window.sent > n", arg=start + 60, timeout=TIMEOUT_MS)
    assert bob.evaluate("window.media.alice.frames") - frames_at_switch_off <= 5

    bob.evaluate(f"{video}.switchOn()")
    wait_log(bob, "switchedOn")
    wait_media_grows(bob, "alice")
