"""RSP v2, the room signaling protocol of twilio-video.js 2.x, as msgspec Structs.

RSP messages travel in the `body` of TCMP frames (tcmp.py). References are to
/work/shared/reference/twilio-signaling-protocol.md: §2.1 client → server, §2.2 server → client,
§2.3 track ids and SIDs, §3 peer connections, §6 media signaling, §7 error codes. Every shape was
checked against the captured frames (tests/data/twilio-signaling-*trace.jsonl).

    client → server  `ClientMessage`: Connect · ClientUpdate · Sync · Disconnect · IceRequest
    server → client  `ServerMessage`: Connected · ServerUpdate · Synced · Disconnected ·
                                      ErrorMessage · Iced · WarningMessage

Rules the Structs encode:

* **Input is tolerant.** Unknown fields are ignored (the SDK adds fields across versions); the
  fields the SDK may send as `null` (`connect.name`, `disconnect.session`) accept `None`. Anything
  else that does not fit raises `InvalidMessageError` (Twilio 53004, "client sent an invalid
  message").
* **Output omits what is absent.** Optional blocks default to `UNSET`, which msgspec never
  encodes; the SDK never sees `null` where it expects an object or an array. Fields the SDK
  needs are required here: `connected.options` (else a TypeError in the SDK), `participant`
  with `sid`/`identity` (else 53003), every `tracks` array (the SDK iterates it), each block's
  `revision` (the SDK applies a block only when it goes up).
* Defaults other than `UNSET` are always encoded (`version: 2`, `state: "connected"`, ...).

ICE candidates keep the W3C camelCase of `RTCIceCandidate.toJSON()` on the wire and are
snake_case in Python. `bandwidth_profile` stays a loose dict: the server reads it, never builds it.
"""

from __future__ import annotations

from typing import Any, Literal, NewType, Protocol

import msgspec
from msgspec import UNSET, UnsetType

from domain.ids import ParticipantSid, RoomSid, TrackSid
from media.signaling.errors import InvalidMessageError

TrackId = NewType("TrackId", str)  # the client's publication id, also its SDP a=msid track id (§2.3)
PeerConnectionId = NewType("PeerConnectionId", str)  # a client-made (or server-made) UUID (§3)
SessionId = NewType("SessionId", str)  # opaque; the client echoes it in update, sync, disconnect

TrackKind = Literal["audio", "video", "data"]
TrackPriority = Literal["low", "standard", "high"]
DescriptionType = Literal["offer", "answer", "create-offer", "close"]


class _Wire(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every RSP Struct: keyword construction, immutable values. Subclasses repeat
    `kw_only=True, frozen=True`: msgspec does not inherit `kw_only`, and mypy wants `frozen` stated."""


# --- blocks shared by both directions (§3) ------------------------------------------------------


class IceCandidate(_Wire, kw_only=True, frozen=True, rename="camel"):
    """`RTCIceCandidate.toJSON()`: candidate, sdpMid, sdpMLineIndex, usernameFragment."""

    candidate: str
    sdp_mid: str | UnsetType | None = UNSET
    sdp_m_line_index: int | UnsetType | None = UNSET
    username_fragment: str | UnsetType | None = UNSET


class IceState(_Wire, kw_only=True, frozen=True):
    """Trickle ICE for one ufrag: the full candidate list so far, one revision higher each time."""

    ufrag: str
    revision: int
    candidates: list[IceCandidate]
    complete: bool | UnsetType = UNSET


class SessionDescription(_Wire, kw_only=True, frozen=True):
    """An offer or answer (with `sdp`), a `create-offer` request, or `close` (no revision)."""

    type: DescriptionType
    revision: int | UnsetType = UNSET
    sdp: str | UnsetType = UNSET


class PeerConnectionState(_Wire, kw_only=True, frozen=True):
    """One `peer_connections[]` entry; `{id}` alone in `synced` keeps that PC open."""

    id: PeerConnectionId
    description: SessionDescription | UnsetType = UNSET
    ice: IceState | UnsetType = UNSET


# --- blocks the client sends (§2.1) -------------------------------------------------------------


class LocalTrackState(_Wire, kw_only=True, frozen=True):
    """A track the client publishes, as it lists it in `participant.tracks`."""

    id: TrackId
    kind: TrackKind
    name: str
    enabled: bool
    priority: TrackPriority = "standard"


class LocalParticipantState(_Wire, kw_only=True, frozen=True):
    """The client's full local state; the server diffs `tracks` to find (un)publishes (§2.1)."""

    revision: int
    tracks: list[LocalTrackState]
    media_warnings: list[str] | UnsetType = UNSET


class Publisher(_Wire, kw_only=True, frozen=True):
    name: str | UnsetType = UNSET
    sdk_version: str | UnsetType = UNSET
    user_agent: str | UnsetType = UNSET


class TransportRequest(_Wire, kw_only=True, frozen=True):
    type: str


class MediaSignalingRequest(_Wire, kw_only=True, frozen=True):
    """`connect.media_signaling.<channel>`: the transports the client can use (§6)."""

    transports: list[TransportRequest]


class SubscribeRule(_Wire, kw_only=True, frozen=True):
    type: Literal["include", "exclude"]
    all: bool | UnsetType = UNSET
    publisher: str | UnsetType = UNSET
    track: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET


class SubscribeRequest(_Wire, kw_only=True, frozen=True):
    revision: int
    rules: list[SubscribeRule]


# --- client → server messages (§2.1) ------------------------------------------------------------


class Connect(_Wire, kw_only=True, frozen=True, tag="connect"):
    """The join request, usually the body of `hello`."""

    version: int = 2
    name: str | None = None
    token: str
    ice_servers: Literal["overrode", "acquire"] | UnsetType = UNSET
    format: str | UnsetType = UNSET
    publisher: Publisher | UnsetType = UNSET
    participant: LocalParticipantState
    peer_connections: list[PeerConnectionState] = msgspec.field(default_factory=list)
    media_signaling: dict[str, MediaSignalingRequest] | UnsetType = UNSET
    subscribe: SubscribeRequest | UnsetType = UNSET
    bandwidth_profile: dict[str, Any] | UnsetType = UNSET


class ClientUpdate(_Wire, kw_only=True, frozen=True, tag="update"):
    """Any change after `connected`: always the full participant state, maybe PCs (§2.1)."""

    version: int = 2
    session: SessionId
    participant: LocalParticipantState
    peer_connections: list[PeerConnectionState] | UnsetType = UNSET
    bandwidth_profile: dict[str, Any] | UnsetType = UNSET


class Sync(_Wire, kw_only=True, frozen=True, tag="sync"):
    """Reconnect on a new socket (the body of its `hello`); PCs carry current descriptions (§4)."""

    version: int = 2
    session: SessionId
    token: str
    name: str | None = None
    participant: LocalParticipantState
    peer_connections: list[PeerConnectionState] = msgspec.field(default_factory=list)


class Disconnect(_Wire, kw_only=True, frozen=True, tag="disconnect"):
    """Leave; `session` is null when `connect` had failed."""

    version: int = 2
    session: SessionId | None = None


class IceRequest(_Wire, kw_only=True, frozen=True, tag="ice"):
    """The ICE-server request (`ice_servers: 'acquire'`), sent as the `hello` body; answer `Iced`."""

    version: int = 1
    edge: str | UnsetType = UNSET
    token: str | UnsetType = UNSET


ClientMessage = Connect | ClientUpdate | Sync | Disconnect | IceRequest


# --- blocks the server sends (§2.2, §2.3) -------------------------------------------------------


class TrackState(_Wire, kw_only=True, frozen=True):
    """A published track as the server describes it (remote participants, and `participant`)."""

    sid: TrackSid
    id: TrackId | UnsetType = UNSET
    kind: TrackKind
    name: str
    enabled: bool
    priority: TrackPriority = "standard"


class ParticipantState(_Wire, kw_only=True, frozen=True):
    """A participant; the SDK ignores it unless `revision` went up. Remove one with `disconnected`."""

    sid: ParticipantSid
    identity: str
    revision: int
    state: Literal["connected", "reconnecting", "disconnected"] = "connected"
    tracks: list[TrackState] = msgspec.field(default_factory=list)


class SelfParticipant(_Wire, kw_only=True, frozen=True):
    """`participant` in connected/synced/update: the client itself. The SDK reads only `sid` and
    `identity` (localParticipant.sid/identity); the group prototype sent a full state, the P2P one not."""

    sid: ParticipantSid
    identity: str
    revision: int | UnsetType = UNSET
    state: Literal["connected", "reconnecting", "disconnected"] | UnsetType = UNSET
    tracks: list[TrackState] | UnsetType = UNSET


class TrackError(_Wire, kw_only=True, frozen=True):
    code: int
    message: str


class PublishedTrack(_Wire, kw_only=True, frozen=True):
    """Assigns a SID to the client's track `id` (`ready`), or fails it (`failed` + `error`)."""

    id: TrackId
    sid: TrackSid | UnsetType = UNSET
    state: Literal["created", "ready", "failed"] = "ready"
    error: TrackError | UnsetType = UNSET


class Published(_Wire, kw_only=True, frozen=True):
    revision: int
    tracks: list[PublishedTrack]


class SubscribedTrack(_Wire, kw_only=True, frozen=True):
    """`id` must equal the a=msid track id of the m-line in the server's SDP (or a data label)."""

    sid: TrackSid
    id: TrackId | UnsetType = UNSET
    error: TrackError | UnsetType = UNSET


class Subscribed(_Wire, kw_only=True, frozen=True):
    """The full list of subscriptions; entries missing from a higher revision are unsubscribed."""

    revision: int
    tracks: list[SubscribedTrack]


class Recording(_Wire, kw_only=True, frozen=True):
    revision: int
    is_recording: bool


class RoomOptions(_Wire, kw_only=True, frozen=True):
    """`connected.options`; omit `media_region` for peer-to-peer rooms (p2p doc §4)."""

    session_timeout: int = 30
    signaling_region: str | UnsetType = UNSET
    media_region: str | UnsetType = UNSET
    audio_processors: list[str] | UnsetType = UNSET


class DataChannelTransport(_Wire, kw_only=True, frozen=True):
    label: str
    type: str = "data-channel"


class MediaSignalingGrant(_Wire, kw_only=True, frozen=True):
    """`media_signaling.<channel>`: the label of the data channel the server will open (§6)."""

    transport: DataChannelTransport


class IceServer(_Wire, kw_only=True, frozen=True):
    urls: str | list[str]
    username: str | UnsetType = UNSET
    credential: str | UnsetType = UNSET


class TrackWarning(_Wire, kw_only=True, frozen=True):
    recordings: Literal["OK", "NO_MEDIA"]


class WarningStates(_Wire, kw_only=True, frozen=True):
    revision: int
    tracks: dict[TrackSid, TrackWarning]


# --- server → client messages (§2.2) ------------------------------------------------------------


class _RoomState(_Wire, kw_only=True, frozen=True):
    """The optional blocks every room-state message may carry; each applies if its revision rose."""

    participant: SelfParticipant | UnsetType = UNSET
    participants: list[ParticipantState] | UnsetType = UNSET
    peer_connections: list[PeerConnectionState] | UnsetType = UNSET
    published: Published | UnsetType = UNSET
    subscribed: Subscribed | UnsetType = UNSET
    recording: Recording | UnsetType = UNSET
    media_signaling: dict[str, MediaSignalingGrant] | UnsetType = UNSET


class Connected(_RoomState, kw_only=True, frozen=True, tag="connected"):
    """The answer to `connect`; `connect()` resolves once the SDK has processed it."""

    version: int = 2
    session: SessionId
    sid: RoomSid
    name: str
    options: RoomOptions = msgspec.field(default_factory=RoomOptions)
    participant: SelfParticipant


class ServerUpdate(_RoomState, kw_only=True, frozen=True, tag="update"):
    """Any later change; participants are removed only by `state: "disconnected"`."""


class Synced(_RoomState, kw_only=True, frozen=True, tag="synced"):
    """The answer to `sync`: participants and PC ids left out are removed/closed by the client."""

    version: int = 2
    session: SessionId
    sid: RoomSid | UnsetType = UNSET
    name: str | UnsetType = UNSET
    options: RoomOptions | UnsetType = UNSET
    participant: SelfParticipant


class Disconnected(_Wire, kw_only=True, frozen=True, tag="disconnected"):
    """`status: "completed"` disconnects the room with 53118; any other status, with no error."""

    status: str | UnsetType = UNSET


class ErrorMessage(_Wire, kw_only=True, frozen=True, tag="error"):
    """Rejects `connect()` before `connected`, disconnects the room after it (§7)."""

    code: int
    message: str

    @classmethod
    def from_error(cls, error: TwilioCoded) -> ErrorMessage:
        return cls(code=error.code, message=error.message)


class Iced(_Wire, kw_only=True, frozen=True, tag="iced"):
    ice_servers: list[IceServer]


class WarningMessage(_Wire, kw_only=True, frozen=True, tag="warning"):
    """Recording media warnings, only for clients that asked (`media_warnings`)."""

    states: WarningStates


ServerMessage = Connected | ServerUpdate | Synced | Disconnected | ErrorMessage | Iced | WarningMessage


class TwilioCoded(Protocol):
    """Anything with a Twilio code and a message: signaling errors and domain errors alike."""

    @property
    def code(self) -> int: ...

    @property
    def message(self) -> str: ...


# --- codecs -------------------------------------------------------------------------------------

_client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
_encoder = msgspec.json.Encoder()


def decode_client_message(data: bytes | str | msgspec.Raw) -> ClientMessage:
    """Decode an RSP body from a client; raise `InvalidMessageError` (53004) if it does not fit."""
    try:
        return _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidMessageError(str(exc)) from exc


def encode_server_message(message: ServerMessage) -> bytes:
    return _encoder.encode(message)


def decode_server_message(data: bytes | str | msgspec.Raw) -> ServerMessage:
    """The client side of the codec (the Python participant client, and tests)."""
    return _server_decoder.decode(data)


def encode_client_message(message: ClientMessage) -> bytes:
    return _encoder.encode(message)
