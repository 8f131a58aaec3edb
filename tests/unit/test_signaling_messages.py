"""RSP v2 messages against the frames the unmodified twilio-video 2.36 SDK really exchanged.

Ground truth: tests/data/twilio-signaling-trace.jsonl (group rooms) and
twilio-signaling-p2p-trace.jsonl (peer-to-peer), copied from the reference captures. A client
frame must decode into the struct of its type without losing a field; a server frame must be
reproducible by our structs key for key, since that is what the SDK was seen to accept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from msgspec import UNSET

from domain.errors import RoomFullError
from domain.ids import ParticipantSid, RoomSid, TrackSid
from media.signaling.errors import InvalidMessageError
from media.signaling.messages import (
    ClientUpdate,
    Connect,
    Connected,
    Disconnect,
    Disconnected,
    ErrorMessage,
    Iced,
    IceRequest,
    ParticipantState,
    PeerConnectionId,
    PeerConnectionState,
    Published,
    PublishedTrack,
    Recording,
    RoomOptions,
    SelfParticipant,
    ServerUpdate,
    SessionDescription,
    SessionId,
    Subscribed,
    Sync,
    Synced,
    TrackId,
    TrackState,
    TrackWarning,
    WarningMessage,
    WarningStates,
    decode_client_message,
    decode_server_message,
    encode_client_message,
    encode_server_message,
)

DATA = Path(__file__).resolve().parents[1] / "data"
GROUP = "twilio-signaling-trace.jsonl"
P2P = "twilio-signaling-p2p-trace.jsonl"
TCMP_ONLY = {"welcome", "heartbeat", "busy", "bad", "bye"}


def records(trace: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / trace).read_text().splitlines()]


def client_bodies() -> list[Any]:
    """Every RSP body a client sent (hello bodies and msg bodies), as pytest params."""
    found = []
    for trace in (GROUP, P2P):
        for line, record in enumerate(records(trace)):
            frame = record["msg"]
            if record["dir"] == "in" and "body" in frame:
                found.append(pytest.param(frame["body"], id=f"{trace.split('.')[0]}:{line}:{frame['body']['type']}"))
    return found


def server_body(record: dict[str, Any]) -> dict[str, Any] | None:
    """The RSP body of a server frame (the group trace logged some bodies without their msg frame)."""
    frame = record["msg"]
    if record["dir"] != "out" or frame["type"] in TCMP_ONLY:
        return None
    body: dict[str, Any] = frame["body"] if frame["type"] == "msg" else frame
    return body


def server_bodies() -> list[Any]:
    found = []
    for trace in (GROUP, P2P):
        for line, record in enumerate(records(trace)):
            if (body := server_body(record)) is not None:
                found.append(pytest.param(body, id=f"{trace.split('.')[0]}:{line}:{body['type']}"))
    return found


def group(line: int) -> dict[str, Any]:
    frame: dict[str, Any] = records(GROUP)[line]["msg"]
    return frame


def as_json(message: Any) -> Any:
    return json.loads(encode_server_message(message))


CLIENT_TYPES = {"connect": Connect, "update": ClientUpdate, "sync": Sync, "disconnect": Disconnect, "ice": IceRequest}


# --- client → server ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", client_bodies())
def test_every_client_message_in_the_traces_decodes_into_its_struct_without_losing_a_field(
    body: dict[str, Any],
) -> None:
    message = decode_client_message(json.dumps(body))

    assert type(message) is CLIENT_TYPES[body["type"]]
    assert json.loads(encode_client_message(message)) == body


def test_the_traces_hold_every_kind_of_client_message() -> None:
    kinds = {param.values[0]["type"] for param in client_bodies()}

    assert kinds == set(CLIENT_TYPES)


def test_a_connect_gives_the_server_the_room_token_tracks_and_offer() -> None:
    connect = decode_client_message(json.dumps(group(0)["body"]))

    assert isinstance(connect, Connect)
    assert connect.name == "r1"
    assert connect.token.startswith("eyJ")
    assert connect.ice_servers == "overrode"
    assert [(t.id, t.kind, t.enabled, t.priority) for t in connect.participant.tracks] == [
        ("e3e85ee9-69ae-4ee2-bcdf-ef82ae4921eb", "audio", True, "standard"),
        ("00532e5e-8e43-44ac-804a-f151915b7bed", "video", True, "standard"),
    ]
    (pc,) = connect.peer_connections
    assert pc.id == "76e5362b-40ec-4090-8fd5-12e2992773be"
    assert isinstance(pc.description, SessionDescription)
    assert (pc.description.type, pc.description.revision) == ("offer", 1)
    assert isinstance(pc.description.sdp, str) and pc.description.sdp.startswith("v=0\r\n")


def test_a_connect_asking_for_media_signaling_lists_the_channels_and_their_transports() -> None:
    connect = decode_client_message(json.dumps(group(37)["body"]))

    assert isinstance(connect, Connect)
    assert connect.media_signaling
    assert {name: [t.type for t in request.transports] for name, request in connect.media_signaling.items()} == {
        "active_speaker": ["data-channel"],
        "network_quality": ["data-channel"],
    }


def test_trickled_candidates_arrive_cumulatively_with_their_ufrag_and_completion() -> None:
    first = decode_client_message(json.dumps(group(2)["body"]))
    last = decode_client_message(json.dumps(group(3)["body"]))

    assert isinstance(first, ClientUpdate) and isinstance(last, ClientUpdate)
    assert first.session == last.session == "SE6684a56de817992e2070edf0954da84e"
    first_ice, last_ice = (u.peer_connections[0].ice for u in (first, last) if u.peer_connections)
    assert first_ice and last_ice
    assert (first_ice.ufrag, first_ice.revision, first_ice.complete) == ("ecnH", 1, UNSET)
    assert (last_ice.ufrag, last_ice.revision, last_ice.complete) == ("ecnH", 2, True)
    candidate = last_ice.candidates[0]
    assert (candidate.sdp_mid, candidate.sdp_m_line_index, candidate.username_fragment) == ("0", 0, "ecnH")
    assert candidate.candidate.startswith("candidate:")


def test_an_ice_server_request_carries_the_token_and_edge() -> None:
    request = decode_client_message(json.dumps(group(21)["body"]))

    assert isinstance(request, IceRequest)
    assert (request.version, request.edge) == (1, "roaming")
    assert isinstance(request.token, str) and request.token.startswith("eyJ")


def test_a_disconnect_after_a_failed_connect_has_no_session() -> None:
    assert decode_client_message(json.dumps(group(29)["body"])) == Disconnect(session=None)


def test_a_sync_brings_the_session_and_the_current_answer_of_each_peer_connection() -> None:
    sync = decode_client_message(json.dumps(group(89)["body"]))

    assert isinstance(sync, Sync)
    assert sync.session == "SE6f422d7e262cb5b01894777a414dce90"
    (pc,) = sync.peer_connections
    assert isinstance(pc.description, SessionDescription)
    assert (pc.id, pc.description.type, pc.description.revision) == (
        "016d7ad3-c0aa-40cc-adc0-63bfa467a49b",
        "answer",
        3,
    )


def test_fields_a_newer_sdk_adds_are_ignored() -> None:
    body = json.loads(json.dumps(group(0)["body"]))
    body["future_flag"] = {"x": 1}
    body["participant"]["tracks"][0]["audio_processor"] = "krisp"
    body["peer_connections"][0]["description"]["extra"] = True

    assert decode_client_message(json.dumps(body)) == decode_client_message(json.dumps(group(0)["body"]))


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        pytest.param('{"type": "connect", "version": 2', "", id="truncated-json"),
        pytest.param("[1, 2]", "Expected `object`", id="not-an-object"),
        pytest.param('{"type": "teleport"}', "$.type", id="unknown-type"),
        pytest.param('{"type": "connect", "participant": {"revision": 1, "tracks": []}}', "`token`", id="no-token"),
        pytest.param(
            '{"type": "update", "session": "SE1", "participant": {"revision": 2, "tracks": '
            '[{"id": "t", "kind": "hologram", "name": "n", "enabled": true}]}}',
            "$.participant.tracks[0].kind",
            id="unknown-track-kind",
        ),
    ],
)
def test_invalid_client_messages_raise_53004_client_sent_an_invalid_message(data: str, complaint: str) -> None:
    with pytest.raises(InvalidMessageError) as raised:
        decode_client_message(data)

    assert raised.value.code == 53004
    assert complaint in raised.value.message


# --- server → client ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", server_bodies())
def test_every_server_message_in_the_traces_is_reproduced_key_for_key(body: dict[str, Any]) -> None:
    assert as_json(decode_server_message(json.dumps(body))) == body


def test_connected_built_in_python_is_the_frame_the_sdk_accepted() -> None:
    frame = group(1)
    answer_sdp = frame["peer_connections"][0]["description"]["sdp"]
    audio, video = ("e3e85ee9-69ae-4ee2-bcdf-ef82ae4921eb", "00532e5e-8e43-44ac-804a-f151915b7bed")
    audio_sid, video_sid = (
        TrackSid("MT20925d6477ea51005de6248146e9f374"),
        TrackSid("MT1a673eb7d1e4118bf25862f8c3c6ab5d"),
    )

    connected = Connected(
        session=SessionId("SE6684a56de817992e2070edf0954da84e"),
        sid=RoomSid("RM256c43d5c8fa86fa365acead4104bd12"),
        name="r1",
        options=RoomOptions(session_timeout=30, signaling_region="local", media_region="local"),
        participant=SelfParticipant(
            sid=ParticipantSid("PA566269d4464eb444758a9cc38a15e991"),
            identity="alice",
            revision=1,
            state="connected",
            tracks=[
                TrackState(
                    sid=audio_sid,
                    id=TrackId(audio),
                    kind="audio",
                    name="37edc66f-1930-459c-9597-36c986cd2fb9",
                    enabled=True,
                ),
                TrackState(
                    sid=video_sid,
                    id=TrackId(video),
                    kind="video",
                    name="065d4c26-4d1f-44ed-8faf-65011c96daa5",
                    enabled=True,
                ),
            ],
        ),
        participants=[],
        peer_connections=[
            PeerConnectionState(
                id=PeerConnectionId("76e5362b-40ec-4090-8fd5-12e2992773be"),
                description=SessionDescription(type="answer", revision=1, sdp=answer_sdp),
            )
        ],
        published=Published(
            revision=1,
            tracks=[PublishedTrack(id=TrackId(audio), sid=audio_sid), PublishedTrack(id=TrackId(video), sid=video_sid)],
        ),
        subscribed=Subscribed(revision=1, tracks=[]),
        recording=Recording(revision=1, is_recording=False),
        media_signaling={},
    )

    assert as_json(connected) == frame


def test_an_update_assigning_track_sids_is_the_frame_that_resolved_publish_track() -> None:
    sids = {
        "e3e85ee9-69ae-4ee2-bcdf-ef82ae4921eb": "MT20925d6477ea51005de6248146e9f374",
        "00532e5e-8e43-44ac-804a-f151915b7bed": "MT1a673eb7d1e4118bf25862f8c3c6ab5d",
    }
    update = ServerUpdate(
        published=Published(
            revision=2, tracks=[PublishedTrack(id=TrackId(id_), sid=TrackSid(sid)) for id_, sid in sids.items()]
        )
    )

    assert as_json(update) == group(14)["body"]


def test_a_participant_leaves_by_a_higher_revision_in_state_disconnected_not_by_being_left_out() -> None:
    bob = ParticipantState(
        sid=ParticipantSid("PA9c244961c6765f4f49735dcad532ecca"),
        identity="bob",
        revision=2,
        state="disconnected",
        tracks=[
            TrackState(
                sid=TrackSid("MT581e38448db74c8ce703280cb0045836"),
                id=TrackId("83cd9cf7-9338-4d28-863e-5726a039fb91"),
                kind="audio",
                name="f8449ae8-4e19-481e-bd37-f65b0d799750",
                enabled=True,
            ),
            TrackState(
                sid=TrackSid("MT4a1b9970afa240c90292c0c59e27e686"),
                id=TrackId("400131e3-e0af-4f84-bde9-4cbc6c415731"),
                kind="video",
                name="dd2419a6-1d84-43e1-8530-f4dc3128277f",
                enabled=True,
            ),
        ],
    )

    assert as_json(ServerUpdate(participants=[bob])) == group(17)["body"]


def test_synced_keeps_a_peer_connection_open_by_listing_only_its_id() -> None:
    body = group(90)["body"]
    synced = decode_server_message(json.dumps(body))
    assert isinstance(synced, Synced)

    rebuilt = Synced(
        session=synced.session,
        participant=synced.participant,
        participants=synced.participants,
        peer_connections=[PeerConnectionState(id=PeerConnectionId("016d7ad3-c0aa-40cc-adc0-63bfa467a49b"))],
        published=synced.published,
        subscribed=synced.subscribed,
    )

    assert as_json(rebuilt) == body
    assert body["peer_connections"] == [{"id": "016d7ad3-c0aa-40cc-adc0-63bfa467a49b"}]


def test_room_completed_errors_and_ice_servers_are_the_frames_the_sdk_acted_on() -> None:
    assert as_json(Disconnected(status="completed")) == group(113)["body"]
    assert as_json(ErrorMessage(code=20107, message="Invalid Access Token signature")) == group(28)
    duplicate = ErrorMessage(code=53205, message="Participant disconnected because of duplicate identity")
    assert as_json(duplicate) == group(122)["body"]
    assert as_json(Iced(ice_servers=[])) == group(22)


def test_absent_optional_blocks_are_left_out_never_sent_as_null() -> None:
    bare = Connected(
        session=SessionId("SE1"),
        sid=RoomSid("RM1"),
        name="r",
        participant=SelfParticipant(sid=ParticipantSid("PA1"), identity="a"),
    )

    assert as_json(ServerUpdate()) == {"type": "update"}
    assert as_json(bare) == {
        "type": "connected",
        "version": 2,
        "session": "SE1",
        "sid": "RM1",
        "name": "r",
        "options": {"session_timeout": 30},
        "participant": {"sid": "PA1", "identity": "a"},
    }
    assert b"null" not in encode_server_message(bare)


def test_an_error_built_from_a_domain_error_carries_its_twilio_code() -> None:
    assert ErrorMessage.from_error(RoomFullError("RM1", 2)).code == 53105
    assert ErrorMessage.from_error(InvalidMessageError("bad")).code == 53004


def test_a_recording_media_warning_has_the_shape_the_sdk_reads() -> None:
    warning = WarningMessage(
        states=WarningStates(revision=3, tracks={TrackSid("MT1"): TrackWarning(recordings="NO_MEDIA")})
    )

    assert as_json(warning) == {
        "type": "warning",
        "states": {"revision": 3, "tracks": {"MT1": {"recordings": "NO_MEDIA"}}},
    }
