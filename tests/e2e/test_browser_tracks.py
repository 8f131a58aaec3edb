"""Track changes of unmodified twilio-video SDKs in group rooms on `openrooms serve`.

Publishing after connect and unpublishing, disabling and enabling, an audio-only room refusing
video (53125), and three participants. Each participant is its own browser context (own fake
camera and microphone). The pages record the SDK's public events in `window.log`; the tests wait
on them and on decoded frames with `wait_for_function` (deterministic, with timeouts), never on
fixed sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.browser_room import TIMEOUT_MS, token, wait_log

CONNECT = """async ([token, wsServer, name, media]) => {
  window.log = [];
  const log = (entry) => window.log.push(entry);
  const watch = (p) => {
    p.on('trackPublished', (pub) => log(`trackPublished:${p.identity}:${pub.kind}:${pub.trackSid}`));
    p.on('trackUnpublished', (pub) => log(`trackUnpublished:${p.identity}:${pub.kind}:${pub.trackSid}`));
    p.on('trackDisabled', (pub) => log(`trackDisabled:${p.identity}:${pub.kind}`));
    p.on('trackEnabled', (pub) => log(`trackEnabled:${p.identity}:${pub.kind}`));
  };
  try {
    const options = {name, wsServer, iceServers: [], insights: false};
    const room = await Twilio.Video.connect(token, Object.assign(options, media));
    window.room = room;
    room.localParticipant.on('trackPublicationFailed', (error, track) => {
      log(`trackPublicationFailed:${track.kind}:${error.code}`);
    });
    room.participants.forEach((p) => { log(`present:${p.identity}`); watch(p); });
    room.on('participantConnected', (p) => { log(`participantConnected:${p.identity}`); watch(p); });
    room.on('participantDisconnected', (p) => log(`participantDisconnected:${p.identity}`));
    room.on('trackSubscribed', (track, publication, p) => {
      log(`trackSubscribed:${p.identity}:${track.kind}:${publication.trackSid}`);
      track.on('disabled', () => log(`disabled:${p.identity}:${track.kind}`));
      track.on('enabled', () => log(`enabled:${p.identity}:${track.kind}`));
      const element = track.attach();
      element.id = `remote-${track.kind}-${p.identity}`;
      element.muted = true;  // autoplay without a user gesture; the media is still received and decoded
      document.body.appendChild(element);
    });
    room.on('trackUnsubscribed', (track, publication, p) => {
      log(`trackUnsubscribed:${p.identity}:${track.kind}:${publication.trackSid}`);
      track.detach().forEach((element) => element.remove());
    });
    room.on('disconnected', (r, error) => log(`disconnected:${error ? error.code : 'none'}`));
    const published = Array.from(room.localParticipant.tracks.values()).map((p) => [p.kind, p.trackSid]);
    return {connected: true, sid: room.sid, participantSid: room.localParticipant.sid, published};
  } catch (error) {
    return {connected: false, code: error.code, message: error.message};
  }
}"""

AUDIO_AND_VIDEO = {"audio": True, "video": {"width": 320, "height": 240}}
AUDIO_ONLY = {"audio": True, "video": False}

FRAMES = """(identity) => {
  const video = document.getElementById(`remote-video-${identity}`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : -1;
}"""
FRAMES_ABOVE = "([identity, n]) => (" + FRAMES + ")(identity) > n"


def connect(page: Any, service: Any, identity: str, room: str, media: dict[str, Any]) -> dict[str, Any]:
    url = service.base_url.replace("http://", "ws://") + "/signaling"
    outcome: dict[str, Any] = page.evaluate(CONNECT, [token(service, identity, room), url, room, media])
    return outcome


def wait_log_prefix(page: Any, prefix: str) -> str:
    """The first log entry starting with `prefix`, once there is one."""
    page.wait_for_function("(p) => window.log.some((e) => e.startsWith(p))", arg=prefix, timeout=TIMEOUT_MS)
    entry: str = page.evaluate("(p) => window.log.find((e) => e.startsWith(p))", prefix)
    return entry


def wait_frames_grow(page: Any, identity: str) -> None:
    """The page's `<video>` of `identity` decodes frames, and keeps decoding."""
    page.wait_for_function(FRAMES_ABOVE, arg=[identity, 10], timeout=TIMEOUT_MS)
    before = page.evaluate(FRAMES, identity)
    page.wait_for_function(FRAMES_ABOVE, arg=[identity, before + 10], timeout=TIMEOUT_MS)


def published_tracks(service: Any, room_sid: str, participant_sid: str) -> dict[str, tuple[str, bool]]:
    """The REST API's published tracks of a participant: sid → (kind, enabled)."""
    tracks = service.client().video.v1.rooms(room_sid).participants(participant_sid).published_tracks.list()
    return {t.sid: (t.kind, t.enabled) for t in tracks}


def test_a_video_track_published_after_connect_reaches_the_other_participant_and_unpublishing_removes_it(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(), sdk_pages()
    a = connect(alice, running_service, "alice", "later", AUDIO_ONLY)
    b = connect(bob, running_service, "bob", "later", AUDIO_AND_VIDEO)
    assert a["connected"] and b["connected"], (a, b)
    wait_log_prefix(bob, "trackSubscribed:alice:audio:")

    sid = alice.evaluate("""async () => {
      window.camera = await Twilio.Video.createLocalVideoTrack({width: 320, height: 240});
      const publication = await window.room.localParticipant.publishTrack(window.camera);
      return publication.trackSid;
    }""")

    assert sid.startswith("MT"), sid
    wait_log(bob, f"trackPublished:alice:video:{sid}")
    wait_log(bob, f"trackSubscribed:alice:video:{sid}")
    log = bob.evaluate("window.log")
    assert log.index(f"trackPublished:alice:video:{sid}") < log.index(f"trackSubscribed:alice:video:{sid}")
    wait_frames_grow(bob, "alice")
    assert published_tracks(running_service, a["sid"], a["participantSid"])[sid] == ("video", True)

    alice.evaluate("window.room.localParticipant.unpublishTrack(window.camera)")

    wait_log(bob, f"trackUnsubscribed:alice:video:{sid}")
    wait_log(bob, f"trackUnpublished:alice:video:{sid}")
    log = bob.evaluate("window.log")
    assert log.index(f"trackUnsubscribed:alice:video:{sid}") < log.index(f"trackUnpublished:alice:video:{sid}")
    assert [kind for kind, _ in published_tracks(running_service, a["sid"], a["participantSid"]).values()] == ["audio"]
    assert "disconnected:none" not in alice.evaluate("window.log") + bob.evaluate("window.log")


def test_disabling_and_enabling_an_audio_track_reaches_the_other_participant_and_the_rest_api(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(), sdk_pages()
    a = connect(alice, running_service, "alice", "mute", AUDIO_AND_VIDEO)
    b = connect(bob, running_service, "bob", "mute", AUDIO_AND_VIDEO)
    assert a["connected"] and b["connected"], (a, b)
    audio_sid = dict(a["published"])["audio"]
    wait_log(bob, f"trackSubscribed:alice:audio:{audio_sid}")

    alice.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")

    wait_log(bob, "disabled:alice:audio")
    wait_log(bob, "trackDisabled:alice:audio")
    assert published_tracks(running_service, a["sid"], a["participantSid"])[audio_sid] == ("audio", False)
    assert (
        bob.evaluate(
            "Array.from(window.room.participants.values())[0].audioTracks.values().next().value.isTrackEnabled"
        )
        is False
    )

    alice.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.enable())")

    wait_log(bob, "enabled:alice:audio")
    wait_log(bob, "trackEnabled:alice:audio")
    assert published_tracks(running_service, a["sid"], a["participantSid"])[audio_sid] == ("audio", True)


def test_an_audio_only_room_connects_but_refuses_the_video_publication_with_53125(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    room = running_service.client().video.v1.rooms.create(unique_name="radio", type="group", audio_only=True)
    alice, bob = sdk_pages(), sdk_pages()

    a = connect(alice, running_service, "alice", "radio", AUDIO_AND_VIDEO)

    assert a["connected"] is True, a
    assert a["sid"] == room.sid
    wait_log(alice, "trackPublicationFailed:video:53125")
    assert alice.evaluate("window.room.localParticipant.videoTracks.size") == 0
    assert [kind for kind, _ in published_tracks(running_service, room.sid, a["participantSid"]).values()] == ["audio"]

    b = connect(bob, running_service, "bob", "radio", AUDIO_ONLY)
    assert b["connected"] is True, b
    wait_log_prefix(bob, "trackSubscribed:alice:audio:")
    refused = bob.evaluate("""async () => {
      const camera = await Twilio.Video.createLocalVideoTrack({width: 320, height: 240});
      try {
        await window.room.localParticipant.publishTrack(camera);
        return 'published';
      } catch (error) {
        return error.code;
      } finally {
        camera.stop();
      }
    }""")
    assert refused == 53125
    wait_log(bob, "trackPublicationFailed:video:53125")
    assert bob.evaluate("window.room.state") == "connected"
    assert not any(entry.startswith("trackPublished:bob:video") for entry in alice.evaluate("window.log"))


def test_three_participants_each_decode_the_video_of_the_other_two(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    names = ["alice", "bob", "carol"]
    pages = {name: sdk_pages() for name in names}
    for name, page in pages.items():
        outcome = connect(page, running_service, name, "trio", AUDIO_AND_VIDEO)
        assert outcome["connected"], (name, outcome)

    for name, page in pages.items():
        for other in names:
            if other != name:
                wait_log_prefix(page, f"trackSubscribed:{other}:video:")
                wait_frames_grow(page, other)
