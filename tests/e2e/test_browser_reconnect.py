"""A twilio-video SDK whose signaling socket drops reconnects with `sync`; its media never stops.

The page wraps the `WebSocket` constructor before the SDK loads (`HOLD_SOCKETS`, an init script),
so the test can close the SDK's own signaling socket from the page, as a network drop or a proxy
would. The SDK then reconnects on a new socket (protocol doc §4) while the PeerConnection stays up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.browser_room import (
    DROP_SIGNALING,
    HOLD_SOCKETS,
    TIMEOUT_MS,
    connect,
    wait_log,
    wait_media_grows,
)

OPEN_SIGNALING_SOCKETS = "window.sockets.filter((ws) => ws.url.endsWith('/signaling') && ws.readyState === 1)"


def test_a_dropped_signaling_socket_reconnects_and_media_keeps_flowing(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(HOLD_SOCKETS), sdk_pages(HOLD_SOCKETS)
    outcomes = [connect(page, running_service, who, "flaky") for page, who in ((alice, "alice"), (bob, "bob"))]
    assert all(o["connected"] for o in outcomes), outcomes
    wait_log(alice, "trackSubscribed:bob:video")
    wait_log(bob, "trackSubscribed:alice:video")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")
    assert alice.evaluate(f"{OPEN_SIGNALING_SOCKETS}.length") == 1

    alice.evaluate(DROP_SIGNALING)

    wait_log(alice, "reconnecting:53001")
    wait_log(alice, "reconnected")
    assert alice.evaluate("window.room.state") == "connected"
    alice.wait_for_function(f"{OPEN_SIGNALING_SOCKETS}.length === 1", timeout=TIMEOUT_MS)
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")
    log = alice.evaluate("window.log")
    assert log.index("reconnecting:53001") < log.index("reconnected")
    assert not [e for e in log if e.startswith(("disconnected", "participantDisconnected", "trackUnsubscribed"))]
    bob_log = bob.evaluate("window.log")
    assert not [e for e in bob_log if e.startswith(("disconnected", "participantDisconnected", "trackUnsubscribed"))]
    wait_log(bob, "participantReconnected:alice")  # told of alice's reconnect, as on Twilio
    assert bob_log.index("participantReconnecting:alice") < bob.evaluate("window.log").index(
        "participantReconnected:alice"
    )
    participants = running_service.client().video.v1.rooms(outcomes[0]["sid"]).participants.list(status="connected")
    assert {p.identity for p in participants} == {"alice", "bob"}

    # The session is the same one: a later change still reaches the other side over the new socket.
    alice.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")
    wait_log(bob, "trackDisabled:alice:audio")


def test_an_offer_made_while_the_socket_was_down_arrives_with_the_reconnect(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    alice, bob = sdk_pages(), sdk_pages(HOLD_SOCKETS)
    audio_only = {"audio": True, "video": False}
    assert connect(alice, running_service, "alice", "offline-offer", audio_only)["connected"]
    assert connect(bob, running_service, "bob", "offline-offer", audio_only)["connected"]
    wait_log(bob, "trackSubscribed:alice:audio")

    bob.evaluate("window.offline = true")
    bob.evaluate(DROP_SIGNALING)
    wait_log(bob, "reconnecting:53001")
    # While bob is away the SFU adds alice's new video to his PeerConnection: its offer cannot reach him.
    alice.evaluate("""async () => {
      const camera = await Twilio.Video.createLocalVideoTrack({width: 320, height: 240});
      await window.room.localParticipant.publishTrack(camera);
    }""")
    bob.evaluate("window.offline = false")

    wait_log(bob, "reconnected")
    wait_log(bob, "trackSubscribed:alice:video")
    wait_media_grows(bob, "alice")
