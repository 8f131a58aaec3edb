"""Media workers as processes: `openrooms serve` (role all) and a `--role media` process on its NATS.

Each process is a WebSocket front and a media worker. A room is placed on one worker (the least
loaded when its first participant connects); a participant who connects through the other
process's `/signaling` is bridged to that worker over NATS, so both are in one SFU. Python
clients (media.client) and twilio-video pages connect through different fronts and decode each
other's media; the processes' /metrics show where the sessions are; a bridged page whose socket
drops reconnects (`sync`) through its front to the same worker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from media.client import FrameCounter, Room, SyntheticVideoTrack, ToneAudioTrack, TrackSubscribed, connect
from tests.e2e.browser_room import (
    DROP_SIGNALING,
    HOLD_SOCKETS,
    media_metrics,
    token,
    wait_log,
    wait_media_grows,
)
from tests.e2e.browser_room import connect as browser_connect
from tests.e2e.conftest import MEDIA_ENV

WIDTH, HEIGHT = 320, 240
PUBLIC = "http://rooms.example.test"


pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture(scope="module")
def processes(start: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The first process (engine, REST, media) and a media-only one on its NATS."""
    state = tmp_path_factory.mktemp("workers") / "state"
    first = start(state, "--public-url", PUBLIC, env=MEDIA_ENV)
    second = start(state, "--role", "media", "--nats", first.nats_url, "--public-url", PUBLIC, env=MEDIA_ENV)
    yield first, second
    codes = [process.process.stop() for process in (second, first)]  # both stopped before any assertion
    for process, code in zip((second, first), codes, strict=True):
        assert code == 0, process.process.stderr()
        assert "Traceback" not in process.process.stderr(), process.process.stderr()


@pytest.fixture
async def join(processes: tuple[Any, Any]) -> AsyncIterator[Callable[..., Any]]:
    """`await join(front, identity, room)`: a client connected through `front`'s /signaling."""
    rooms: list[Room] = []

    async def _join(front: Any, identity: str, room: str) -> Room:
        url = front.base_url.replace("http://", "ws://") + "/signaling"
        tracks = [SyntheticVideoTrack(WIDTH, HEIGHT), ToneAudioTrack()]
        joined = await connect(url, token(processes[0], identity, room), room, tracks)
        rooms.append(joined)
        return joined

    yield _join
    for room in rooms:
        await room.disconnect()


async def decodes(room: Room, identity: str) -> None:
    """Until `room` decodes `identity`'s video and audio."""
    for kind in ("video", "audio"):
        event = await room.wait_for(
            TrackSubscribed, lambda e, k=kind: e.participant.identity == identity and e.publication.kind == k
        )
        counter = FrameCounter(event.track)
        try:
            await counter.wait_for(10)
        finally:
            await counter.stop()


def sessions(process: Any) -> float:
    return media_metrics(process).get('openrooms_media_sessions{room_type="group"}', 0.0)


async def test_participants_connecting_through_different_processes_meet_on_the_rooms_worker(join, processes):
    first, second = processes
    name = f"w-{uuid.uuid4().hex[:8]}"

    alice = await join(first, "alice", name)
    bob = await join(second, "bob", name)

    assert alice.sid == bob.sid
    await decodes(alice, "bob")
    await decodes(bob, "alice")
    assert (sessions(first), sessions(second)) == (2.0, 0.0), "the room lives on the first process's worker"


async def test_a_new_room_goes_to_the_least_loaded_worker(join, processes):
    first, second = processes
    busy, fresh = f"busy-{uuid.uuid4().hex[:6]}", f"fresh-{uuid.uuid4().hex[:6]}"
    alice = await join(first, "alice", busy)

    carol = await join(first, "carol", fresh)  # through the first process, onto the idle second
    dave = await join(first, "dave", fresh)

    await decodes(carol, "dave")
    await decodes(dave, "carol")
    assert sessions(second) == 2.0
    assert alice.sid != carol.sid


def test_twilio_video_through_another_process_is_bridged_and_reconnects_to_the_same_worker(
    sdk_pages: Callable[..., Any], processes: tuple[Any, Any]
) -> None:
    first, second = processes
    name = f"browsers-{uuid.uuid4().hex[:6]}"
    alice, bob = sdk_pages(), sdk_pages(HOLD_SOCKETS)
    before = sessions(first), sessions(second)
    assert browser_connect(alice, first, "alice", name)["connected"]
    hosting = first if sessions(first) > before[0] else second
    other = second if hosting is first else first
    assert browser_connect(bob, other, "bob", name)["connected"]  # through the process not holding the room
    assert (sessions(hosting), sessions(other)) == (before[hosting is second] + 2, before[other is second])
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")

    bob.evaluate(DROP_SIGNALING)  # the SDK reconnects to the same front with `sync`, bridged again

    wait_log(bob, "reconnecting:53001")
    wait_log(bob, "reconnected")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")
    bob.evaluate("window.room.localParticipant.audioTracks.forEach((p) => p.track.disable())")
    wait_log(alice, "trackDisabled:bob:audio")
