"""`connect()`: join a room the way twilio-video does (protocol doc §1-§3), as an aiortc participant.

    room = await connect("ws://127.0.0.1:8080/signaling", token, "standup", tracks=[video, audio])

The connect message is the `hello` body (`ice_servers: 'overrode'`: no ICE-server round trip),
with the local tracks (publication id = the aiortc track's id, also its `a=msid` track id), the
subscribe rule (`automatic_subscription`) and the first offer. An RSP `error` instead of
`connected` raises its typed error (`twilio_error`: 20107 for a bad signature, 53205, ...).
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Iterable

from aiortc.mediastreams import MediaStreamTrack

from media.client.errors import SignalingConnectionError, twilio_error
from media.client.mesh import Mesh
from media.client.participant import LocalParticipant, LocalTrackPublication, track_kind
from media.client.room import Room
from media.client.tcmp import TcmpClient
from media.signaling.messages import (
    Connect,
    Connected,
    ErrorMessage,
    LocalParticipantState,
    PeerConnectionState,
    Publisher,
    SubscribeRequest,
    SubscribeRule,
    TrackId,
)

CLIENT_NAME = "openrooms-python"
CLIENT_VERSION = "0.1.0"


async def connect(
    url: str,
    token: str,
    room_name: str | None,
    tracks: Iterable[MediaStreamTrack] = (),
    *,
    automatic_subscription: bool = True,
    timeout: float = 15.0,
) -> Room:
    """Connect to `room_name` at the signaling `url` (ws:// or wss://.../signaling) with `token`."""
    mesh = Mesh()
    tcmp: TcmpClient | None = None
    try:
        publications = [
            LocalTrackPublication(id=TrackId(track.id), kind=track_kind(track), name=track.id, track=track)
            for track in tracks
        ]
        for publication in publications:
            mesh.add_track(publication.track)
        negotiator = mesh.open()
        offer = await negotiator.first_offer()
        message = Connect(
            name=room_name,
            token=token,
            ice_servers="overrode",
            format="unified",
            publisher=Publisher(
                name=CLIENT_NAME, sdk_version=CLIENT_VERSION, user_agent=f"Python/{platform.python_version()}"
            ),
            participant=LocalParticipantState(revision=1 + len(publications), tracks=[p.state() for p in publications]),
            peer_connections=[PeerConnectionState(id=negotiator.id, description=offer)],
            media_signaling={},
            subscribe=SubscribeRequest(
                revision=1, rules=[SubscribeRule(type="include" if automatic_subscription else "exclude", all=True)]
            ),
        )
        tcmp = await TcmpClient.open(url, message)
        async with asyncio.timeout(timeout):
            first = await tcmp.receive()
        if isinstance(first, ErrorMessage):
            raise twilio_error(first.code, first.message)
        if not isinstance(first, Connected):
            raise SignalingConnectionError(f"expected connected, got {type(first).__name__}", code=53003)
        local = LocalParticipant(sid=first.participant.sid, identity=first.participant.identity)
        local.tracks = {p.id: p for p in publications}
        room = Room(tcmp, mesh, first, local)
        await room.start(first)
        return room
    except BaseException as exc:
        if tcmp is not None:
            await tcmp.close()
        await mesh.close()
        if isinstance(exc, TimeoutError):
            raise SignalingConnectionError(f"no connected within {timeout} s", code=53002) from exc
        raise
