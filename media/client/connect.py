"""`connect()`: join a room the way twilio-video does (protocol doc §1-§3), as an aiortc participant.

    room = await connect("ws://127.0.0.1:8080/signaling", token, "standup", tracks=[video, audio])

Like the SDK, without `ice_servers` the client first asks the server for STUN/TURN servers (an
`ice` request as the `hello` body, answered by `iced`, with TURN credentials for the token's
identity) and sends the connect next; with `ice_servers` (a list, `[]` included) the connect is
the `hello` body (`ice_servers: 'overrode'`). `relay_only` is the SDK's `iceTransportPolicy:
'relay'`. The connect carries the local tracks (publication id = the aiortc track's id, also its `a=msid` track id), the
subscribe rule (`automatic_subscription`) and the first offer. An RSP `error` instead of
`connected` raises its typed error (`twilio_error`: 20107 for a bad signature, 53205, ...).
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Iterable
from typing import TypeVar

from aiortc.mediastreams import MediaStreamTrack

from media.client.errors import SignalingConnectionError, twilio_error
from media.client.mesh import Mesh
from media.client.negotiator import rtc_configuration
from media.client.participant import LocalParticipant, LocalTrackPublication, track_kind
from media.client.room import Room
from media.client.tcmp import TcmpClient
from media.signaling.messages import (
    Connect,
    Connected,
    ErrorMessage,
    Iced,
    IceRequest,
    IceServer,
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
    ice_servers: list[IceServer] | None = None,
    relay_only: bool = False,
    timeout: float = 15.0,
) -> Room:
    """Connect to `room_name` at the signaling `url` (ws:// or wss://.../signaling) with `token`."""
    tcmp: TcmpClient | None = None
    mesh: Mesh | None = None
    try:
        if ice_servers is None:
            tcmp = await TcmpClient.open(url, IceRequest(token=token))
            ice_servers = (await _reply(tcmp, Iced, timeout)).ice_servers
        mesh = Mesh(rtc_configuration(ice_servers, relay_only=relay_only))
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
            ice_servers="overrode" if tcmp is None else "acquire",
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
        if tcmp is None:
            tcmp = await TcmpClient.open(url, message)
        else:
            await tcmp.send(message)
        first = await _reply(tcmp, Connected, timeout)
        local = LocalParticipant(sid=first.participant.sid, identity=first.participant.identity)
        local.tracks = {p.id: p for p in publications}
        room = Room(tcmp, mesh, first, local, reconnect_to=(url, token))
        await room.start(first)
        return room
    except BaseException as exc:
        if tcmp is not None:
            await tcmp.close()
        if mesh is not None:
            await mesh.close()
        if isinstance(exc, TimeoutError):
            raise SignalingConnectionError(f"no connected within {timeout} s", code=53002) from exc
        raise


M = TypeVar("M", Iced, Connected)


async def _reply(tcmp: TcmpClient, expected: type[M], timeout: float) -> M:
    """The server's next message, which must be `expected`; an RSP `error` raises its typed error."""
    async with asyncio.timeout(timeout):
        message = await tcmp.receive()
    if isinstance(message, ErrorMessage):
        raise twilio_error(message.code, message.message)
    if not isinstance(message, expected):
        raise SignalingConnectionError(f"expected {expected.__name__}, got {type(message).__name__}", code=53003)
    return message
