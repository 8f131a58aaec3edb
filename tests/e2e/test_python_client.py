"""The Python participant client (media.client) against a real `openrooms serve`.

Each test uses its own room on one module-wide service (tests/e2e/conftest.py `running_service`,
started with OPENROOMS_MEDIA_ICE_HOSTS=127.0.0.1). The clients' aiortc gathers 127.0.0.1 only
(aioice skips loopback otherwise, as in tests/integration/test_sfu_forwarding.py). Every wait is
on an event or a frame count with a timeout; nothing sleeps to synchronise.

Sessions are ended (disconnect, kick, room completed) only once media flows both ways: the server
logs an unretrieved aiortc task exception (`RTCPeerConnection.__connect`: "RTCIceTransport is
closed") when it closes a PeerConnection whose negotiation has just finished, and the module's
service must log no traceback.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from media.client import (
    AccessTokenError,
    Disconnected,
    FrameCounter,
    ParticipantConnected,
    ParticipantDisconnected,
    ParticipantError,
    Reconnected,
    Reconnecting,
    Room,
    RoomCompletedError,
    SyntheticVideoTrack,
    ToneAudioTrack,
    TrackDisabled,
    TrackEnabled,
    TrackPublished,
    TrackSubscribed,
    TrackUnpublished,
    TrackUnsubscribed,
    connect,
)
from tests.e2e.browser_room import token
from tests.tcp_proxy import TcpProxy

WIDTH, HEIGHT = 320, 240


pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def join(running_service: Any) -> AsyncIterator[Callable[..., Any]]:
    """`await join(identity, room, tracks=[...])`: a connected Room, disconnected at the end."""
    url = running_service.base_url.replace("http://", "ws://") + "/signaling"
    rooms: list[Room] = []

    async def _join(identity: str, room: str, tracks: list[Any] | None = None, **kwargs: Any) -> Room:
        joined = await connect(url, token(running_service, identity, room), room, tracks or [], **kwargs)
        rooms.append(joined)
        return joined

    yield _join
    for room in rooms:
        await room.disconnect()


def room_name() -> str:
    return f"py-{uuid.uuid4().hex[:8]}"


async def subscribed(room: Room, identity: str, kind: str) -> TrackSubscribed:
    return await room.wait_for(
        TrackSubscribed, lambda e: e.participant.identity == identity and e.publication.kind == kind
    )


async def receiving(room: Room, identity: str, kind: str) -> None:
    """Until `room` decodes frames of `identity`'s `kind` track: its media is up (DTLS included), so
    ending the session now does not race with the negotiation (see the module docstring)."""
    counter = FrameCounter((await subscribed(room, identity, kind)).track)
    try:
        await counter.wait_for(5)
    finally:
        await counter.stop()


async def test_two_clients_see_each_other_and_decode_each_others_audio_and_video(join):
    name = room_name()
    alice = await join("alice", name, [SyntheticVideoTrack(WIDTH, HEIGHT), ToneAudioTrack()])
    bob = await join("bob", name, [SyntheticVideoTrack(WIDTH, HEIGHT), ToneAudioTrack()])

    assert alice.sid == bob.sid and alice.sid.startswith("RM") and alice.name == name
    assert alice.local_participant.sid.startswith("PA") and alice.local_participant.identity == "alice"
    assert all(p.sid and p.sid.startswith("MT") for p in alice.local_participant.tracks.values())
    assert [p.identity for p in bob.participants.values()] == ["alice"]
    assert sorted(t.kind for t in bob.participants[alice.local_participant.sid].tracks.values()) == ["audio", "video"]
    joined = await alice.wait_for(ParticipantConnected)
    assert joined.participant.identity == "bob" and joined.participant.sid == bob.local_participant.sid

    counters = []
    for room, other in ((alice, "bob"), (bob, "alice")):
        for kind in ("video", "audio"):
            event = await subscribed(room, other, kind)
            assert event.track.kind == kind and event.publication.track is event.track
            counters.append(FrameCounter(event.track))
    try:
        for counter in counters:
            await counter.wait_for(30 if counter.track.kind == "video" else 50)
        assert all(c.sizes == {(WIDTH, HEIGHT)} for c in counters if c.track.kind == "video")
    finally:
        for counter in counters:
            await counter.stop()


async def test_a_track_published_after_connect_is_received_and_its_disable_and_unpublish_are_seen(join):
    name = room_name()
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name)
    await subscribed(bob, "alice", "audio")

    publication = await alice.publish(SyntheticVideoTrack(WIDTH, HEIGHT), name="camera")
    assert publication.sid is not None and publication.sid.startswith("MT")
    published = await bob.wait_for(TrackPublished, lambda e: e.publication.sid == publication.sid)
    assert published.publication.kind == "video" and published.publication.name == "camera"
    video = await subscribed(bob, "alice", "video")
    counter = FrameCounter(video.track)
    try:
        await counter.wait_for(20)
        assert counter.sizes == {(WIDTH, HEIGHT)}
    finally:
        await counter.stop()

    await alice.set_enabled(publication, False)
    await bob.wait_for(TrackDisabled, lambda e: e.publication.sid == publication.sid)
    await alice.set_enabled(publication, True)
    await bob.wait_for(TrackEnabled, lambda e: e.publication.sid == publication.sid)

    await alice.unpublish(publication)
    await bob.wait_for(TrackUnsubscribed, lambda e: e.publication.sid == publication.sid)
    await bob.wait_for(TrackUnpublished, lambda e: e.publication.sid == publication.sid)
    assert [t.kind for t in bob.participants[alice.local_participant.sid].tracks.values()] == ["audio"]


async def test_a_client_that_disconnects_is_seen_leaving(join, running_service):
    name = room_name()
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name, [ToneAudioTrack()])
    await receiving(alice, "bob", "audio")
    await receiving(bob, "alice", "audio")

    await bob.disconnect()
    left = await alice.wait_for(ParticipantDisconnected)
    assert left.participant.identity == "bob"
    assert (await bob.wait_for(Disconnected)).error is None
    assert alice.participants == {}
    rest = running_service.client().video.v1.rooms(alice.sid).participants(bob.local_participant.sid)
    assert (await asyncio.to_thread(rest.fetch)).status == "disconnected"


async def test_a_token_signed_with_another_secret_is_refused_with_20107(running_service):
    url = running_service.base_url.replace("http://", "ws://") + "/signaling"
    forged = token(running_service, "mallory", "anything", secret="not-the-secret-" + "x" * 32)
    with pytest.raises(AccessTokenError) as refused:
        await connect(url, forged, "anything")
    assert refused.value.code == 20107


async def test_a_second_connect_with_the_same_identity_disconnects_the_first_with_53205(join):
    name = room_name()
    first = await join("alice", name)
    await join("alice", name)
    gone = await first.wait_for(Disconnected)
    assert isinstance(gone.error, ParticipantError) and gone.error.code == 53205


async def test_completing_the_room_over_rest_disconnects_every_client_with_53118(join, running_service):
    name = room_name()
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name)
    await receiving(bob, "alice", "audio")
    rest = running_service.client().video.v1.rooms(alice.sid)
    await asyncio.to_thread(rest.update, status="completed")
    for room in (alice, bob):
        gone = await room.wait_for(Disconnected)
        assert isinstance(gone.error, RoomCompletedError) and gone.error.code == 53118


async def test_a_participant_kicked_over_rest_is_disconnected_without_an_error(join, running_service):
    name = room_name()
    alice = await join("alice", name, [ToneAudioTrack()])
    bob = await join("bob", name, [ToneAudioTrack()])
    await receiving(bob, "alice", "audio")
    await receiving(alice, "bob", "audio")
    rest = running_service.client().video.v1.rooms(alice.sid).participants(bob.local_participant.sid)
    await asyncio.to_thread(rest.update, status="disconnected")
    assert (await bob.wait_for(Disconnected)).error is None
    left = await alice.wait_for(ParticipantDisconnected)
    assert left.participant.identity == "bob"
    assert alice.state == "connected"


async def test_a_lost_signaling_connection_reconnects_and_the_media_keeps_flowing(running_service):
    name = room_name()
    port = int(running_service.base_url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/signaling"
        alice = await connect(url, token(running_service, "alice", name), name, [SyntheticVideoTrack(WIDTH, HEIGHT)])
        bob = await connect(url, token(running_service, "bob", name), name, [ToneAudioTrack()])
        try:
            await receiving(bob, "alice", "video")
            connections = proxy.connections

            await proxy.cut()  # both clients lose their signaling socket; media goes around the proxy

            await alice.wait_for(Reconnecting)
            await alice.wait_for(Reconnected)
            await bob.wait_for(Reconnected)
            assert proxy.connections > connections
            assert alice.state == bob.state == "connected"
            await receiving(bob, "alice", "video")
            # The session is the same: a change after the reconnect reaches the other side.
            publication = await alice.publish(ToneAudioTrack())
            published = await bob.wait_for(TrackPublished, lambda e: e.publication.sid == publication.sid)
            assert published.participant.identity == "alice"
        finally:
            await alice.disconnect()
            await bob.disconnect()
