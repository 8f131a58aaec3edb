"""A Python participant client for openrooms, speaking twilio-video's protocol (TCMP + RSP v2).

    from media.client import connect, TrackSubscribed, FrameCounter, SyntheticVideoTrack, ToneAudioTrack

    room = await connect("ws://127.0.0.1:8080/signaling", token, "standup",
                         tracks=[SyntheticVideoTrack(), ToneAudioTrack()])
    event = await room.wait_for(TrackSubscribed, lambda e: e.publication.kind == "video")
    frames = FrameCounter(event.track)
    await room.disconnect()

For tests, bots and load tests; one aiortc PeerConnection per participant, like the SDK.

    connect.py          `connect()`: hello + connect, welcome, connected → `Room`
    room.py             `Room`: state, typed events, publish / unpublish / set_enabled / disconnect
    negotiator.py       the PeerConnection and its offer/answer revisions (glare without rollback)
    tcmp.py             `TcmpClient`: the WebSocket, hello/welcome, heartbeats, watchdog, bye
    participant.py      local and remote participants and track publications
    event.py            the event types (ParticipantConnected, TrackSubscribed, Disconnected, ...)
    errors.py           `ClientError` and its subclasses, with Twilio codes
    synthetic_track.py  a synthetic video track and a tone, to publish
    frame_counter.py    drains a received track, counting frames

Not supported: reconnect (`sync`) after a lost socket (the room ends with 53001), data tracks and
media-signaling channels, trickle ICE (aiortc's SDP carries its candidates), ICE restarts,
`set_enabled` changing the media (it is signalled only).
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
