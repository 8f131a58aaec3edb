"""A twilio-video SDK whose signaling socket drops reconnects with `sync`; its media never stops.

The page wraps the `WebSocket` constructor before the SDK loads (an init script), so the test can
close the SDK's own signaling socket from the page, as a network drop or a proxy would. The
SDK then reconnects on a new socket (protocol doc §4) while the PeerConnection stays up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

TIMEOUT_MS = 30_000

KEEP_SOCKETS = """(() => {
  const Native = window.WebSocket;
  window.sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.sockets.push(this); }
  };
})();"""

CONNECT = """async ([token, wsServer, name]) => {
  window.log = [];
  const log = (entry) => window.log.push(entry);
  try {
    const room = await Twilio.Video.connect(token, {
      name, wsServer, iceServers: [], insights: false, audio: true, video: {width: 320, height: 240},
    });
    window.room = room;
    room.on('participantConnected', (p) => log(`participantConnected:${p.identity}`));
    room.on('participantDisconnected', (p) => log(`participantDisconnected:${p.identity}`));
    room.on('participantReconnecting', (p) => log(`participantReconnecting:${p.identity}`));
    room.on('trackSubscribed', (track, publication, p) => {
      log(`trackSubscribed:${p.identity}:${track.kind}`);
      const element = track.attach();
      element.id = `remote-${track.kind}-${p.identity}`;
      element.muted = true;
      document.body.appendChild(element);
    });
    room.on('trackUnsubscribed', (track, publication, p) => log(`trackUnsubscribed:${p.identity}:${track.kind}`));
    room.on('reconnecting', (error) => log(`reconnecting:${error ? error.code : 'none'}`));
    room.on('reconnected', () => log('reconnected'));
    room.on('disconnected', (r, error) => log(`disconnected:${error ? error.code : 'none'}`));
    return {connected: true, sid: room.sid, participantSid: room.localParticipant.sid};
  } catch (error) {
    return {connected: false, code: error.code, message: error.message};
  }
}"""

FRAMES = """(identity) => {
  const video = document.getElementById(`remote-video-${identity}`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : -1;
}"""
FRAMES_ABOVE = "([identity, n]) => (" + FRAMES + ")(identity) > n"

OPEN_SIGNALING_SOCKETS = "window.sockets.filter((ws) => ws.url.endsWith('/signaling') && ws.readyState === 1)"


def token(service: Any, identity: str, room: str) -> str:
    c = service.credentials
    access = AccessToken(c["account_sid"], c["api_key_sid"], c["api_key_secret"], identity=identity)
    access.add_grant(VideoGrant(room=room))
    return str(access.to_jwt())


@pytest.fixture
def open_page(chromium: Any, sdk_origin: str) -> Iterator[Callable[[], Any]]:
    """`open_page()`: a page of its own context whose WebSockets are kept in `window.sockets`."""
    contexts: list[Any] = []

    def _open() -> Any:
        context = chromium.new_context()
        contexts.append(context)
        context.add_init_script(script=KEEP_SOCKETS)
        page = context.new_page()
        page.goto(f"{sdk_origin}/sdk.html")
        page.wait_for_function("window.Twilio && window.Twilio.Video")
        return page

    yield _open
    for context in contexts:
        context.close()


def wait_log(page: Any, entry: str) -> None:
    page.wait_for_function("(entry) => window.log.includes(entry)", arg=entry, timeout=TIMEOUT_MS)


def wait_frames_grow(page: Any, identity: str, by: int = 10) -> None:
    """The page's `<video>` of `identity` decodes `by` more frames than it has now (at least 1)."""
    before = max(page.evaluate(FRAMES, identity), 0)
    page.wait_for_function(FRAMES_ABOVE, arg=[identity, before + by], timeout=TIMEOUT_MS)


def test_a_dropped_signaling_socket_reconnects_and_media_keeps_flowing(
    open_page: Callable[[], Any], running_service: Any
) -> None:
    alice, bob = open_page(), open_page()
    room = "flaky"
    url = running_service.base_url.replace("http://", "ws://") + "/signaling"
    outcomes = [
        page.evaluate(CONNECT, [token(running_service, who, room), url, room])
        for page, who in ((alice, "alice"), (bob, "bob"))
    ]
    assert all(o["connected"] for o in outcomes), outcomes
    wait_log(alice, "trackSubscribed:bob:video")
    wait_log(bob, "trackSubscribed:alice:video")
    wait_frames_grow(alice, "bob")
    wait_frames_grow(bob, "alice")
    assert alice.evaluate(f"{OPEN_SIGNALING_SOCKETS}.length") == 1

    alice.evaluate(f"{OPEN_SIGNALING_SOCKETS}.forEach((ws) => ws.close(4000))")

    wait_log(alice, "reconnecting:53001")
    wait_log(alice, "reconnected")
    assert alice.evaluate("window.room.state") == "connected"
    alice.wait_for_function(f"{OPEN_SIGNALING_SOCKETS}.length === 1", timeout=TIMEOUT_MS)
    wait_frames_grow(alice, "bob")
    wait_frames_grow(bob, "alice")
    log = alice.evaluate("window.log")
    assert log.index("reconnecting:53001") < log.index("reconnected")
    assert not [e for e in log if e.startswith(("disconnected", "participantDisconnected", "trackUnsubscribed"))]
    bob_log = bob.evaluate("window.log")
    assert not [e for e in bob_log if e.startswith(("disconnected", "participantDisconnected", "trackUnsubscribed"))]
    participants = running_service.client().video.v1.rooms(outcomes[0]["sid"]).participants.list(status="connected")
    assert {p.identity for p in participants} == {"alice", "bob"}

    # The session is the same one: a later change still reaches the other side over the new socket.
    alice.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")
    bob.wait_for_function(
        "Array.from(window.room.participants.values())[0].audioTracks.values().next().value.isTrackEnabled === false",
        timeout=TIMEOUT_MS,
    )
