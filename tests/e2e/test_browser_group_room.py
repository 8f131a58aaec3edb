"""Two unmodified twilio-video SDKs in one group room on `openrooms serve`, media through the SFU.

Each participant is its own browser context (own fake camera and microphone). The pages record
the SDK's public events in `window.log`; the tests wait on them and on media counters with
`wait_for_function` (deterministic, with timeouts), never on fixed sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

TIMEOUT_MS = 30_000

CONNECT = """async ([token, wsServer, name]) => {
  window.log = [];
  const log = (entry) => window.log.push(entry);
  try {
    const room = await Twilio.Video.connect(token, {
      name, wsServer, iceServers: [], insights: false, audio: true, video: {width: 320, height: 240},
    });
    window.room = room;
    room.participants.forEach((p) => log(`present:${p.identity}`));
    room.on('participantConnected', (p) => log(`participantConnected:${p.identity}`));
    room.on('participantDisconnected', (p) => log(`participantDisconnected:${p.identity}`));
    room.on('trackSubscribed', (track, publication, p) => {
      log(`trackSubscribed:${p.identity}:${track.kind}`);
      const element = track.attach();
      element.id = `remote-${track.kind}-${p.identity}`;
      element.muted = true;  // autoplay without a user gesture; the audio is still received and decoded
      document.body.appendChild(element);
    });
    room.on('trackUnsubscribed', (track, publication, p) => log(`trackUnsubscribed:${p.identity}:${track.kind}`));
    room.on('disconnected', (r, error) => log(`disconnected:${error ? error.code : 'none'}`));
    return {connected: true, sid: room.sid, participantSid: room.localParticipant.sid};
  } catch (error) {
    return {connected: false, code: error.code, message: error.message};
  }
}"""

MEASURE = """(identity) => {
  // A sampler in the page: wait_for_function predicates are synchronous, room.getStats() is not.
  window.media = window.media || {};
  window.media[identity] = {frames: 0, audioPackets: 0};
  setInterval(async () => {
    const video = document.getElementById(`remote-video-${identity}`);
    const reports = await window.room.getStats();
    const audio = reports.flatMap((r) => r.remoteAudioTrackStats).reduce((n, s) => n + (s.packetsReceived || 0), 0);
    const frames = video ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
    window.media[identity] = {frames, audioPackets: audio};
  }, 100);
}"""


def token(service: Any, identity: str, room: str, secret: str | None = None) -> str:
    c = service.credentials
    access = AccessToken(c["account_sid"], c["api_key_sid"], secret or c["api_key_secret"], identity=identity)
    access.add_grant(VideoGrant(room=room))
    return str(access.to_jwt())


def signaling_url(service: Any) -> str:
    return service.base_url.replace("http://", "ws://") + "/signaling"


@pytest.fixture
def pages(chromium: Any, sdk_origin: str) -> Iterator[list[Any]]:
    """Two pages in two browser contexts, each with `Twilio.Video` loaded."""
    contexts = [chromium.new_context() for _ in range(2)]
    loaded = []
    for context in contexts:
        page = context.new_page()
        page.goto(f"{sdk_origin}/sdk.html")
        page.wait_for_function("window.Twilio && window.Twilio.Video")
        loaded.append(page)
    yield loaded
    for context in contexts:
        context.close()


def connect_both(alice: Any, bob: Any, service: Any, room: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice, then Bob, connected to `room`; what each page's connect() gave."""
    url = signaling_url(service)
    a = alice.evaluate(CONNECT, [token(service, "alice", room), url, room])
    b = bob.evaluate(CONNECT, [token(service, "bob", room), url, room])
    assert a["connected"] and b["connected"], (a, b)
    return a, b


def wait_log(page: Any, entry: str) -> None:
    page.wait_for_function("(entry) => window.log.includes(entry)", arg=entry, timeout=TIMEOUT_MS)


def wait_media_grows(page: Any, identity: str) -> None:
    """The remote video decodes frames and remote audio packets arrive, and both keep growing."""
    page.evaluate(MEASURE, identity)
    grown = "([identity, n, a]) => window.media[identity].frames > n && window.media[identity].audioPackets > a"
    page.wait_for_function(grown, arg=[identity, 10, 10], timeout=TIMEOUT_MS)
    before = page.evaluate("(identity) => window.media[identity]", identity)
    page.wait_for_function(
        grown, arg=[identity, before["frames"] + 10, before["audioPackets"] + 10], timeout=TIMEOUT_MS
    )


def test_two_browsers_in_a_group_room_see_each_other_and_exchange_media(pages: list[Any], running_service: Any) -> None:
    alice, bob = pages
    url = signaling_url(running_service)

    a = alice.evaluate(CONNECT, [token(running_service, "alice", "standup"), url, "standup"])
    assert a["connected"] is True, a
    b = bob.evaluate(CONNECT, [token(running_service, "bob", "standup"), url, "standup"])
    assert b["connected"] is True, b
    assert a["sid"] == b["sid"] and a["sid"].startswith("RM")

    wait_log(alice, "participantConnected:bob")
    assert "present:alice" in bob.evaluate("window.log")
    for page, other in ((alice, "bob"), (bob, "alice")):
        wait_log(page, f"trackSubscribed:{other}:audio")
        wait_log(page, f"trackSubscribed:{other}:video")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")

    client = running_service.client()
    participants = client.video.v1.rooms(a["sid"]).participants.list(status="connected")
    assert {p.identity for p in participants} == {"alice", "bob"}
    assert {p.sid for p in participants} == {a["participantSid"], b["participantSid"]}
    for participant in participants:
        tracks = client.video.v1.rooms(a["sid"]).participants(participant.sid).published_tracks.list()
        assert sorted(t.kind for t in tracks) == ["audio", "video"]

    bob.evaluate("window.room.disconnect()")
    wait_log(alice, "participantDisconnected:bob")
    assert "disconnected:none" in bob.evaluate("window.log")
    left = client.video.v1.rooms(a["sid"]).participants(b["participantSid"]).fetch()
    assert left.status == "disconnected"


def test_a_participant_removed_over_rest_is_disconnected_without_an_error(
    pages: list[Any], running_service: Any
) -> None:
    alice, bob = pages
    a, b = connect_both(alice, bob, running_service, "kick")

    running_service.client().video.v1.rooms(a["sid"]).participants(b["participantSid"]).update(status="disconnected")

    wait_log(bob, "disconnected:none")
    wait_log(alice, "participantDisconnected:bob")


def test_completing_the_room_over_rest_disconnects_everyone_with_room_completed(
    pages: list[Any], running_service: Any
) -> None:
    alice, bob = pages
    a, _b = connect_both(alice, bob, running_service, "done")

    running_service.client().video.v1.rooms(a["sid"]).update(status="completed")

    wait_log(alice, "disconnected:53118")
    wait_log(bob, "disconnected:53118")


def test_a_token_signed_with_the_wrong_secret_is_refused_with_20107(pages: list[Any], running_service: Any) -> None:
    forged = token(running_service, "mallory", "standup", secret="not-the-secret-not-the-secret-12")

    outcome = pages[0].evaluate(CONNECT, [forged, signaling_url(running_service), "standup"])

    assert outcome == {"connected": False, "code": 20107, "message": outcome["message"]}


def test_a_second_connect_with_the_same_identity_disconnects_the_first_with_53205(
    pages: list[Any], running_service: Any
) -> None:
    first, second = pages
    url = signaling_url(running_service)
    one = first.evaluate(CONNECT, [token(running_service, "carol", "twins"), url, "twins"])
    assert one["connected"], one

    two = second.evaluate(CONNECT, [token(running_service, "carol", "twins"), url, "twins"])

    assert two["connected"], two
    wait_log(first, "disconnected:53205")
