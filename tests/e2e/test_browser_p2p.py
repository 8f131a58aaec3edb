"""Unmodified twilio-video SDKs in peer-to-peer and go rooms: media goes browser to browser.

The server only relays the browsers' descriptions and candidates (docs/clients.md): the pages
exchange audio, video and data directly while the service's media plane holds no PeerConnection
and receives no RTP packet (its /metrics counters; test_browser_group_room.py shows the same
counters moving for a group room).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.browser_room import (
    DROP_SIGNALING,
    HOLD_SOCKETS,
    connect,
    count_log,
    media_metrics,
    start_sending_data,
    wait_log,
    wait_log_count,
    wait_media_grows,
)

NO_SFU_MEDIA = {"openrooms_media_peer_connections": 0.0, "openrooms_media_rtp_packets_received_total": 0.0}


def create_room(service: Any, name: str, room_type: str) -> Any:
    return service.client().video.v1.rooms.create(unique_name=name, type=room_type)


def assert_no_media_reached_the_server(service: Any, room_type: str, sessions: int) -> None:
    """The media plane serves the sessions (earlier tests' may still be in their reconnect window)
    and holds no PeerConnection and no RTP packet."""
    metrics = media_metrics(service)
    assert metrics[f'openrooms_media_sessions{{room_type="{room_type}"}}'] >= sessions, metrics
    assert {name: metrics[name] for name in NO_SFU_MEDIA} == NO_SFU_MEDIA, metrics


def test_two_browsers_in_a_peer_to_peer_room_exchange_audio_video_and_data_directly(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    room = create_room(running_service, "p2p-pair", "peer-to-peer")
    alice, bob = sdk_pages(), sdk_pages()

    a = connect(alice, running_service, "alice", "p2p-pair")
    b = connect(bob, running_service, "bob", "p2p-pair")

    assert a["connected"] and b["connected"], (a, b)
    assert a["sid"] == b["sid"] == room.sid
    assert a["mediaRegion"] is None  # as on Twilio's peer-to-peer rooms
    for page, other in ((alice, "bob"), (bob, "alice")):
        wait_log(page, f"trackSubscribed:{other}:audio")
        wait_log(page, f"trackSubscribed:{other}:video")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")

    start_sending_data(alice, "hello from alice")
    start_sending_data(bob, "hello from bob")
    wait_log(bob, "message:alice:hello from alice")
    wait_log(alice, "message:bob:hello from bob")

    assert_no_media_reached_the_server(running_service, "peer-to-peer", sessions=2)
    subscribed = running_service.client().video.v1.rooms(room.sid).participants(b["participantSid"])
    assert sorted(t.kind for t in subscribed.subscribed_tracks.list()) == ["audio", "data", "video"]

    bob.evaluate("window.room.disconnect()")
    wait_log(alice, "participantDisconnected:bob")
    assert not any(entry.startswith("disconnected") for entry in alice.evaluate("window.log"))
    assert alice.evaluate("window.room.state") == "connected"


def test_three_browsers_in_a_peer_to_peer_room_form_a_mesh(sdk_pages: Callable[..., Any], running_service: Any) -> None:
    create_room(running_service, "p2p-mesh", "peer-to-peer")
    pages = {name: sdk_pages() for name in ("alice", "bob", "carol")}

    for name, page in pages.items():
        outcome = connect(page, running_service, name, "p2p-mesh")
        assert outcome["connected"], outcome
    start_sending_data(pages["carol"], "carol here")

    for name, page in pages.items():
        for other in pages.keys() - {name}:
            wait_media_grows(page, other)
        if name != "carol":
            wait_log(page, "message:carol:carol here")
    peer_connections = "window.room._signaling._peerConnectionManager._peerConnections.size"
    assert [page.evaluate(peer_connections) for page in pages.values()] == [2, 2, 2]
    assert_no_media_reached_the_server(running_service, "peer-to-peer", sessions=3)


def test_a_go_room_takes_two_browsers_and_refuses_a_third_with_53105(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    create_room(running_service, "go-call", "go")
    alice, bob, carol = sdk_pages(), sdk_pages(), sdk_pages()

    assert connect(alice, running_service, "alice", "go-call")["connected"]
    assert connect(bob, running_service, "bob", "go-call")["connected"]
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")

    third = connect(carol, running_service, "carol", "go-call")

    assert third == {"connected": False, "code": 53105, "message": third["message"]}
    assert_no_media_reached_the_server(running_service, "go", sessions=2)


PUBLISH_CAMERA = """async () => {
  window.camera = await Twilio.Video.createLocalVideoTrack({width: 320, height: 240});
  await window.room.localParticipant.publishTrack(window.camera);
}"""
AUDIO_ONLY = {"audio": True, "video": False}


def test_tracks_published_at_the_same_moment_disabled_and_unpublished_reach_the_peer(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    create_room(running_service, "p2p-tracks", "peer-to-peer")
    alice, bob = sdk_pages(), sdk_pages()
    assert connect(alice, running_service, "alice", "p2p-tracks", AUDIO_ONLY)["connected"]
    assert connect(bob, running_service, "bob", "p2p-tracks", AUDIO_ONLY)["connected"]
    wait_log(alice, "trackSubscribed:bob:audio")
    wait_log(bob, "trackSubscribed:alice:audio")

    # Both publish at once: their offers cross on the one PeerConnection they share (glare).
    alice.evaluate("window.publishing = (" + PUBLISH_CAMERA + ")()")
    bob.evaluate("window.publishing = (" + PUBLISH_CAMERA + ")()")
    alice.evaluate("window.publishing")
    bob.evaluate("window.publishing")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")

    alice.evaluate("window.camera.disable()")
    wait_log(bob, "trackDisabled:alice:video")
    alice.evaluate("window.camera.enable()")
    wait_log(bob, "trackEnabled:alice:video")
    alice.evaluate("window.room.localParticipant.unpublishTrack(window.camera)")
    wait_log(bob, "trackUnsubscribed:alice:video")
    wait_log(bob, "trackUnpublished:alice:video")
    assert alice.evaluate("window.room.state") == bob.evaluate("window.room.state") == "connected"
    assert_no_media_reached_the_server(running_service, "peer-to-peer", sessions=2)


def test_a_dropped_signaling_socket_reconnects_and_the_direct_media_never_stops(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    create_room(running_service, "p2p-flaky", "peer-to-peer")
    alice, bob = sdk_pages(HOLD_SOCKETS), sdk_pages()
    assert connect(alice, running_service, "alice", "p2p-flaky")["connected"]
    assert connect(bob, running_service, "bob", "p2p-flaky")["connected"]
    wait_media_grows(bob, "alice")

    alice.evaluate(DROP_SIGNALING)

    wait_log(alice, "reconnecting:53001")
    wait_log(alice, "reconnected")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")
    for page in (alice, bob):
        log = page.evaluate("window.log")
        assert not [e for e in log if e.startswith(("disconnected", "participantDisconnected", "trackUnsubscribed"))]
    # Still the same session: a change after the reconnect reaches the peer.
    alice.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")
    wait_log(bob, "trackDisabled:alice:audio")


def test_a_peer_offline_past_the_grace_is_unlinked_and_linked_again_when_it_returns(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    create_room(running_service, "p2p-offline", "peer-to-peer")
    alice, bob = sdk_pages(HOLD_SOCKETS), sdk_pages()
    assert connect(alice, running_service, "alice", "p2p-offline")["connected"]
    assert connect(bob, running_service, "bob", "p2p-offline")["connected"]
    wait_media_grows(bob, "alice")

    alice.evaluate("window.offline = true")
    alice.evaluate(DROP_SIGNALING)

    # Bob is told to close the link (not left on a dead one, which would disconnect him with 53405).
    wait_log(bob, "participantReconnecting:alice")
    wait_log(bob, "trackUnsubscribed:alice:video")
    assert bob.evaluate("window.room.state") == "connected"
    assert count_log(bob, "trackSubscribed:alice:video") == 1

    alice.evaluate("window.offline = false")

    wait_log(alice, "reconnected")
    wait_log(bob, "participantReconnected:alice")
    wait_log_count(bob, "trackSubscribed:alice:video", 2)
    wait_media_grows(bob, "alice")
    wait_media_grows(alice, "bob")
    assert bob.evaluate("window.room.state") == alice.evaluate("window.room.state") == "connected"
