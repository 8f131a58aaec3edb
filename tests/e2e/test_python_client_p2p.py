"""The Python participant client (media.client) in peer-to-peer and go rooms of a real `openrooms serve`.

The server only relays each pair's descriptions (media/session/mesh_topology.py): the clients'
media goes client to client, one aiortc PeerConnection per peer, while the service's media plane
holds no PeerConnection and receives no RTP packet (its /metrics). The module has its own service
(tests/e2e/conftest.py `running_service`) and its rooms are all peer-to-peer or go, so those
counters stay 0 throughout. Every wait is on an event or a frame count with a timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from media.client import (
    FrameCounter,
    ParticipantConnected,
    ParticipantDisconnected,
    Room,
    RoomError,
    SyntheticVideoTrack,
    ToneAudioTrack,
    TrackPublished,
    TrackSubscribed,
    TrackUnpublished,
    TrackUnsubscribed,
    connect,
)
from tests.e2e.browser_room import media_metrics, token
from tests.e2e.test_python_client import subscribed

WIDTH, HEIGHT = 320, 240
NO_SFU_MEDIA = {"openrooms_media_peer_connections": 0.0, "openrooms_media_rtp_packets_received_total": 0.0}


pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def join(running_service: Any) -> AsyncIterator[Callable[..., Any]]:
    """`await join(identity, room, tracks=[...])`: a connected Room, disconnected at the end."""
    url = running_service.base_url.replace("http://", "ws://") + "/signaling"
    rooms: list[Room] = []

    async def _join(identity: str, room: str, tracks: list[Any] | None = None) -> Room:
        joined = await connect(url, token(running_service, identity, room), room, tracks or [])
        rooms.append(joined)
        return joined

    yield _join
    for room in rooms:
        await room.disconnect()


async def create_room(service: Any, room_type: str) -> str:
    name = f"py-{room_type}-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(service.client().video.v1.rooms.create, unique_name=name, type=room_type)
    return name


def audio_and_video() -> list[Any]:
    return [SyntheticVideoTrack(WIDTH, HEIGHT), ToneAudioTrack()]


async def decodes(room: Room, identity: str, kind: str, frames: int = 10) -> FrameCounter:
    """A counter on `identity`'s `kind` track once `room` decoded `frames` of it (stop it after)."""
    counter = FrameCounter((await subscribed(room, identity, kind)).track)
    try:
        await counter.wait_for(frames)
    except BaseException:
        await counter.stop()
        raise
    if kind == "video":
        assert counter.sizes == {(WIDTH, HEIGHT)}
    return counter


async def all_decode(pairs: list[tuple[Room, str, str]]) -> None:
    counters = [await decodes(room, identity, kind) for room, identity, kind in pairs]
    for counter in counters:
        await counter.stop()


def assert_no_media_reached_the_server(service: Any, room_type: str = "peer-to-peer", sessions: int = 2) -> None:
    """The media plane serves the sessions, and holds no PeerConnection and no RTP packet."""
    metrics = media_metrics(service)
    assert metrics[f'openrooms_media_sessions{{room_type="{room_type}"}}'] >= sessions, metrics
    assert {name: metrics[name] for name in NO_SFU_MEDIA} == NO_SFU_MEDIA, metrics


async def test_two_clients_in_a_peer_to_peer_room_decode_each_others_audio_and_video_sent_directly(
    join, running_service
):
    name = await create_room(running_service, "peer-to-peer")
    alice = await join("alice", name, audio_and_video())
    assert alice.peer_connection_count == 0 and alice.pc_connection_state == "new"  # alone: nobody to send to
    bob = await join("bob", name, audio_and_video())

    joined = await alice.wait_for(ParticipantConnected)
    assert joined.participant.identity == "bob"
    assert [p.identity for p in bob.participants.values()] == ["alice"]
    await all_decode(
        [(room, other, kind) for room, other in ((alice, "bob"), (bob, "alice")) for kind in ("video", "audio")]
    )
    assert alice.peer_connection_count == bob.peer_connection_count == 1
    assert alice.pc_connection_state == bob.pc_connection_state == "connected"
    assert_no_media_reached_the_server(running_service)


async def test_three_clients_in_a_peer_to_peer_room_form_a_mesh(join, running_service):
    name = await create_room(running_service, "peer-to-peer")
    rooms = {identity: await join(identity, name, audio_and_video()) for identity in ("alice", "bob", "carol")}

    await all_decode(
        [
            (room, other, kind)
            for me, room in rooms.items()
            for other in rooms
            if other != me
            for kind in ("video", "audio")
        ]
    )
    assert {me: room.peer_connection_count for me, room in rooms.items()} == {"alice": 2, "bob": 2, "carol": 2}
    assert_no_media_reached_the_server(running_service, sessions=3)


async def test_a_go_room_takes_two_clients_and_refuses_a_third_with_53105(join, running_service):
    name = await create_room(running_service, "go")
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name, [ToneAudioTrack()])
    await all_decode([(alice, "bob", "audio"), (bob, "alice", "audio")])

    with pytest.raises(RoomError) as refused:
        await join("carol", name, [ToneAudioTrack()])
    assert refused.value.code == 53105
    assert alice.state == bob.state == "connected" and len(alice.participants) == 1
    assert_no_media_reached_the_server(running_service, room_type="go")


async def test_a_participant_leaving_is_seen_by_the_others_who_stay_connected_and_keep_their_media(
    join, running_service
):
    name = await create_room(running_service, "peer-to-peer")
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name, [ToneAudioTrack()])
    carol = await join("carol", name, [ToneAudioTrack()])
    rooms = {"alice": alice, "bob": bob, "carol": carol}
    await all_decode([(room, other, "audio") for me, room in rooms.items() for other in rooms if other != me])

    await carol.disconnect()
    for room in (alice, bob):
        gone = await room.wait_for(TrackUnsubscribed, lambda e: e.participant.identity == "carol")
        assert gone.publication.kind == "audio"
        left = await room.wait_for(ParticipantDisconnected)
        assert left.participant.identity == "carol"
        assert room.state == "connected" and room.peer_connection_count == 1
    counter = await decodes(alice, "bob", "audio", frames=1)  # counting from here: bob's audio keeps coming
    try:
        await counter.wait_for(counter.frames + 25)
    finally:
        await counter.stop()

    await bob.disconnect()
    await alice.wait_for(ParticipantDisconnected, lambda e: e.participant.identity == "bob")
    assert alice.state == "connected" and alice.participants == {} and alice.peer_connection_count == 0


async def test_tracks_published_after_connect_reach_the_peer_and_an_unpublish_is_seen(join, running_service):
    name = await create_room(running_service, "peer-to-peer")
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name)  # nothing to send at first
    await all_decode([(bob, "alice", "audio")])

    video = await alice.publish(SyntheticVideoTrack(WIDTH, HEIGHT), name="camera")
    assert video.sid is not None and video.sid.startswith("MT")
    published = await bob.wait_for(TrackPublished, lambda e: e.publication.sid == video.sid)
    assert published.publication.name == "camera"
    audio = await bob.publish(ToneAudioTrack(), name="mic")
    await all_decode([(bob, "alice", "video"), (alice, "bob", "audio")])

    await alice.unpublish(video)
    await bob.wait_for(TrackUnsubscribed, lambda e: e.publication.sid == video.sid)
    await bob.wait_for(TrackUnpublished, lambda e: e.publication.sid == video.sid)
    assert [t.kind for t in bob.participants[alice.local_participant.sid].tracks.values()] == ["audio"]
    assert [t.name for t in alice.participants[bob.local_participant.sid].tracks.values()] == [audio.name]
    assert_no_media_reached_the_server(running_service)


async def test_tracks_published_by_both_peers_at_once_reach_each_other(join, running_service):
    """Their offers cross on the one PeerConnection: the server drops one, and its client answers the
    other (without the m-line of its own new track) and offers again (glare)."""
    name = await create_room(running_service, "peer-to-peer")
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name, [ToneAudioTrack()])
    await all_decode([(alice, "bob", "audio"), (bob, "alice", "audio")])

    video, audio = await asyncio.gather(
        alice.publish(SyntheticVideoTrack(WIDTH, HEIGHT)), bob.publish(ToneAudioTrack(), name="second")
    )
    for room, publication in ((bob, video), (alice, audio)):
        event = await room.wait_for(TrackSubscribed, lambda e, sid=publication.sid: e.publication.sid == sid)
        counter = FrameCounter(event.track)
        try:
            await counter.wait_for(10)
        finally:
            await counter.stop()
    await all_decode([(bob, "alice", "audio")])  # the first tracks still play
    await all_decode([(alice, "bob", "audio")])


async def test_a_track_published_while_alone_reaches_a_participant_who_joins_later(join, running_service):
    name = await create_room(running_service, "peer-to-peer")
    alice = await join("alice", name)
    video = await alice.publish(SyntheticVideoTrack(WIDTH, HEIGHT))
    assert video.sid is not None and alice.peer_connection_count == 0

    bob = await join("bob", name, [ToneAudioTrack()])
    assert [t.sid for t in bob.participants[alice.local_participant.sid].tracks.values()] == [video.sid]
    await all_decode([(bob, "alice", "video"), (alice, "bob", "audio")])
