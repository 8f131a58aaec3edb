"""The relay's messages: subject, body and Nats-Msg-Id of every kind of stored event.

The relay splices the position into the stored JSON instead of decoding and re-encoding each
event; the bytes must be exactly what encoding the decoded event gives."""

from __future__ import annotations

import msgspec

from adapters.nats.relay import message_of, subject_of
from domain.codec import decode
from domain.commands import CompleteRoom, ConnectParticipant, CreateRoom, DisconnectParticipant, TrackSpec
from domain.settings import AccountPolicy
from tests.unit.conftest import ACCOUNT_SID, World


def test_every_stored_event_becomes_the_message_a_decode_and_encode_would_give() -> None:
    world = World(AccountPolicy(account_sid=ACCOUNT_SID))
    room = world.given(CreateRoom, unique_name="standup", status_callback="https://example.com/cb").room_sid
    go = world.given(CreateRoom, unique_name="pair", type="go").room_sid
    alice = world.given(
        ConnectParticipant, room="standup", identity="alice", tracks=[TrackSpec(name="cam", kind="video")]
    )
    world.given(ConnectParticipant, room="standup", identity="bob", tracks=[TrackSpec(name="mic", kind="audio")])
    world.given(ConnectParticipant, room="pair", identity="carol")
    world.given(DisconnectParticipant, room_sid=str(room), participant_sid=str(alice.participant_sid))
    world.given(CompleteRoom, room_sid=str(go))

    notifications = world.app.recorder.select_notifications(1, 1000)
    kinds = set()
    for notification in notifications:
        event = decode(notification.topic, notification.state)
        kinds.add(type(event).__name__)
        expected_body = msgspec.json.encode({"position": notification.id, **msgspec.to_builtins(event)})
        assert message_of(notification) == (
            subject_of(event),
            expected_body,
            f"{event.originator_id}:{event.originator_version}",
        )
    # Room events and the index and account events filed under their rooms were all covered.
    assert {"RoomCreated", "RoomNameClaimed", "ParticipantConnected", "TrackPublished", "TrackSubscribed"} <= kinds
    assert {"GoParticipantAdmitted", "ParticipantDisconnected", "RoomEnded"} <= kinds
