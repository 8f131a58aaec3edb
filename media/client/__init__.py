"""A Python participant client for openrooms, speaking twilio-video's protocol (TCMP + RSP v2).

    from media.client import connect, TrackSubscribed, FrameCounter, SyntheticVideoTrack, ToneAudioTrack

    room = await connect("ws://127.0.0.1:8080/signaling", token, "standup",
                         tracks=[SyntheticVideoTrack(), ToneAudioTrack()])
    event = await room.wait_for(TrackSubscribed, lambda e: e.publication.kind == "video")
    frames = FrameCounter(event.track)
    await room.disconnect()

For tests, bots and load tests. Like the SDK, it works in every room type: one aiortc
PeerConnection to the SFU in a group room, one per other participant in a peer-to-peer or go room
(the server relays their descriptions; media goes client to client).

    connect.py          `connect()`: hello + connect, welcome, connected → `Room`
    room.py             `Room`: state, typed events, publish / unpublish / set_enabled / disconnect
    mesh.py             `Mesh`: the PeerConnections by id, opened and closed as the server says
    negotiator.py       one PeerConnection and its offer/answer revisions (glare without rollback)
    ice_box.py          a peer's trickled ICE candidates, by ufrag, until they can be added
    track_relay.py      one local track sent on several PeerConnections (a copy each)
    tcmp.py             `TcmpClient`: the WebSocket, hello/welcome, heartbeats, watchdog, bye
    reconnect.py        `reopen`: a new socket with `sync` after a lost one, with the SDK's backoff
    participant.py      local and remote participants and track publications
    event.py            the event types (ParticipantConnected, TrackSubscribed, Disconnected, ...)
    errors.py           `ClientError` and its subclasses, with Twilio codes
    synthetic_track.py  a synthetic video track and a tone, to publish
    frame_counter.py    drains a received track, counting frames

A lost socket (not closed with 1000) emits `Reconnecting` and reconnects with `sync` within the
room's `session_timeout`, then `Reconnected` (or `Disconnected` with 53000); calls that send
while it is away raise `SignalingConnectionError`.

Not supported: data tracks and media-signaling channels, sending trickle ICE (aiortc's SDP
carries its candidates), ICE restarts, `set_enabled` changing the media (it is signalled only).
"""

from media.client.connect import connect
from media.client.errors import (
    AccessTokenError,
    ClientError,
    ClientStateError,
    MediaError,
    ParticipantError,
    RoomCompletedError,
    RoomError,
    SignalingConnectionError,
    TrackError,
    twilio_error,
)
from media.client.event import (
    Disconnected,
    ParticipantConnected,
    ParticipantDisconnected,
    Reconnected,
    Reconnecting,
    RoomEvent,
    TrackDisabled,
    TrackEnabled,
    TrackPublished,
    TrackSubscribed,
    TrackSubscriptionFailed,
    TrackUnpublished,
    TrackUnsubscribed,
)
from media.client.frame_counter import FrameCounter
from media.client.participant import LocalParticipant, LocalTrackPublication, RemoteParticipant, RemoteTrackPublication
from media.client.room import Room
from media.client.synthetic_track import SyntheticVideoTrack, ToneAudioTrack

__all__ = [
    "AccessTokenError",
    "ClientError",
    "ClientStateError",
    "Disconnected",
    "FrameCounter",
    "LocalParticipant",
    "LocalTrackPublication",
    "MediaError",
    "ParticipantConnected",
    "ParticipantDisconnected",
    "ParticipantError",
    "Reconnected",
    "Reconnecting",
    "RemoteParticipant",
    "RemoteTrackPublication",
    "Room",
    "RoomCompletedError",
    "RoomError",
    "RoomEvent",
    "SignalingConnectionError",
    "SyntheticVideoTrack",
    "ToneAudioTrack",
    "TrackDisabled",
    "TrackEnabled",
    "TrackError",
    "TrackPublished",
    "TrackSubscribed",
    "TrackSubscriptionFailed",
    "TrackUnpublished",
    "TrackUnsubscribed",
    "connect",
    "twilio_error",
]
