"""Peer-to-peer media through a real coturn, with the TURN credentials openrooms hands out in `iced`.

The service is configured with a coturn started by the test (tests/coturn.py: Debian's
`turnserver`, TURN REST API secret). The pages connect WITHOUT `iceServers`, so the SDK asks
openrooms for ICE servers and gets the TURN server with time-limited credentials, and with
`iceTransportPolicy: 'relay'`, so media can only flow through the relay. The Python client does
the same (no `ice_servers`, `relay_only=True`). Expired and forged
credentials are refused by coturn: tests/integration/test_turn_relay.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from media.client import FrameCounter, SyntheticVideoTrack, ToneAudioTrack, TrackSubscribed
from media.client import connect as py_connect
from tests.coturn import Coturn, ensure_coturn
from tests.e2e.browser_room import (
    AUDIO_AND_VIDEO,
    CONNECT,
    SELECTED_CANDIDATE_PAIRS,
    connect,
    signaling_url,
    token,
    wait_media_grows,
)
from tests.e2e.conftest import MEDIA_ENV

SECRET = "turn-secret-for-the-e2e-test"
RELAY_ONLY = {**AUDIO_AND_VIDEO, "iceServers": None, "iceTransportPolicy": "relay"}


@pytest.fixture
def turn_service(start: Callable[..., Any], tmp_path: Path) -> Iterator[tuple[Any, Coturn]]:
    ensure_coturn()
    with Coturn(tmp_path / "coturn", secret=SECRET) as coturn:
        env = {**MEDIA_ENV, "OPENROOMS_TURN_URLS": coturn.url, "OPENROOMS_TURN_SECRET": SECRET}
        service = start(tmp_path / "state", env=env)
        yield service, coturn
        assert service.process.stop() == 0, service.process.stderr()


def test_two_browsers_in_a_peer_to_peer_room_talk_through_turn_with_handed_out_credentials(
    sdk_pages: Callable[..., Any], turn_service: tuple[Any, Coturn]
) -> None:
    service, coturn = turn_service
    service.client().video.v1.rooms.create(unique_name="relayed", type="peer-to-peer")
    alice, bob = sdk_pages(), sdk_pages()

    assert connect(alice, service, "alice", "relayed", RELAY_ONLY)["connected"]
    assert connect(bob, service, "bob", "relayed", RELAY_ONLY)["connected"]

    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")
    # Each side sends from its TURN allocation to the other's. The far end may be labelled
    # peer-reflexive: its connectivity check can arrive before its trickled candidate does.
    [alices], [bobs] = alice.evaluate(SELECTED_CANDIDATE_PAIRS), bob.evaluate(SELECTED_CANDIDATE_PAIRS)
    assert alices["local"]["type"] == bobs["local"]["type"] == "relay", (alices, bobs)
    assert all(re.fullmatch(r"[\d.]+:\d+", pair[end]["address"]) for pair in (alices, bobs) for end in pair), (
        alices,
        bobs,
    )
    assert alices["remote"]["address"] == bobs["local"]["address"], (alices, bobs)
    assert bobs["remote"]["address"] == alices["local"]["address"], (alices, bobs)
    assert ":alice" in coturn.log() and ":bob" in coturn.log()  # the usernames `iced` made: <expiry>:<identity>


def test_turn_credentials_are_not_handed_to_a_forged_token(
    sdk_pages: Callable[..., Any], turn_service: tuple[Any, Coturn]
) -> None:
    service, _coturn = turn_service
    forged = token(service, "mallory", "relayed", secret="not-the-secret-not-the-secret-12")

    outcome = sdk_pages().evaluate(CONNECT, [forged, signaling_url(service), "relayed", RELAY_ONLY])

    assert outcome == {"connected": False, "code": 20107, "message": outcome["message"]}


pytestmark = pytest.mark.usefixtures("loopback_ice")


async def test_python_clients_ask_for_ice_servers_and_talk_through_turn(turn_service: tuple[Any, Coturn]) -> None:
    service, coturn = turn_service
    service.client().video.v1.rooms.create(unique_name="relayed-py", type="peer-to-peer")
    url = signaling_url(service)
    rooms = []
    try:
        for identity in ("alice", "bob"):
            tracks = [SyntheticVideoTrack(320, 240), ToneAudioTrack()]
            access = token(service, identity, "relayed-py")
            rooms.append(await py_connect(url, access, "relayed-py", tracks, relay_only=True))
        for room, other in zip(rooms, ("bob", "alice"), strict=True):
            event = await room.wait_for(TrackSubscribed, lambda e, o=other: e.participant.identity == o)
            counter = FrameCounter(event.track)
            try:
                await counter.wait_for(10)
            finally:
                await counter.stop()
            assert room.local_candidate_types() == {"relay"}
    finally:
        for room in rooms:
            await room.disconnect()
    assert ":alice" in coturn.log() and ":bob" in coturn.log()
