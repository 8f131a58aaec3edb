"""Tracks: publish, names, audio-only rooms, the track cap, enable/disable, unpublish."""

from __future__ import annotations

import pytest

from domain import events as ev
from domain.commands import (
    CompleteRoom,
    ConnectParticipant,
    DisconnectParticipant,
    PublishTrack,
    SetTrackEnabled,
    TrackSpec,
    UnpublishTrack,
)

# --- publish ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["audio", "video", "data"])
def test_a_participant_publishes_a_track_of_each_kind(world, kind):
    room = world.room()
    alice = world.join(room, "alice").participant_sid

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="t", kind=kind)

    published = outcome.one(ev.TrackPublished)
    assert (published.track_sid, published.participant_sid, published.name, published.kind, published.enabled) == (
        outcome.result.track_sid,
        alice,
        "t",
        kind,
        True,
    )
    assert outcome.result.track_sid.startswith("MT")
    assert world.published(room) == {"alice/t"}


def test_tracks_given_at_connect_are_published_with_the_participant(world):
    room = world.room()

    outcome = world.when(
        ConnectParticipant,
        room=room,
        identity="alice",
        tracks=[
            TrackSpec(name="mic", kind="audio"),
            TrackSpec(name="cam", kind="video", enabled=False),
            TrackSpec(name="chat", kind="data"),
        ],
    )

    assert outcome.names == ["ParticipantConnected", "TrackPublished", "TrackPublished", "TrackPublished"]
    assert [e.track_sid for e in outcome.of(ev.TrackPublished)] == list(outcome.result.track_sids)
    assert [e.enabled for e in outcome.of(ev.TrackPublished)] == [True, False, True]
    assert world.published(room) == {"alice/mic", "alice/cam", "alice/chat"}


def test_a_published_track_is_subscribed_by_the_other_participants(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    bob = world.join(room, "bob").participant_sid

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="audio")

    subscribed = outcome.one(ev.TrackSubscribed)
    assert (subscribed.participant_sid, subscribed.publisher_sid, subscribed.track_sid) == (
        bob,
        alice,
        outcome.result.track_sid,
    )
    assert (subscribed.name, subscribed.kind, subscribed.enabled) == ("mic", "audio", True)


def test_a_participant_can_publish_by_identity(world):
    room = world.room()
    world.join(room, "alice")

    assert world.when(PublishTrack, room_sid=room, participant_sid="alice", name="mic", kind="audio").ok


def test_publishing_for_an_unknown_participant_is_refused_with_53204(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.join(room, "bob")
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="audio")

    assert outcome.code == 53204
    assert outcome.events == []


def test_publishing_in_a_completed_room_is_refused_with_53118(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.given(CompleteRoom, room_sid=room)

    assert world.when(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="audio").code == 53118


# --- names ------------------------------------------------------------------------------------


def test_a_track_name_is_unique_per_participant_53304(world):
    room = world.room()
    alice = world.join(room, "alice", "mic:audio").participant_sid

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="video")

    assert outcome.code == 53304
    assert outcome.events == []


def test_two_participants_may_use_the_same_track_name(world):
    room = world.room()
    world.join(room, "alice", "mic:audio")
    bob = world.join(room, "bob").participant_sid

    assert world.when(PublishTrack, room_sid=room, participant_sid=bob, name="mic", kind="audio").ok
    assert world.published(room) == {"alice/mic", "bob/mic"}


def test_repeated_track_names_in_one_connect_are_refused_with_53304(world):
    room = world.room()

    outcome = world.when(
        ConnectParticipant,
        room=room,
        identity="alice",
        tracks=[
            TrackSpec(name="mic", kind="audio"),
            TrackSpec(name="mic", kind="video"),
        ],
    )

    assert outcome.code == 53304
    assert outcome.events == []


def test_a_track_name_can_be_reused_after_unpublishing(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    mic = world.publish(room, alice, "mic")
    world.given(UnpublishTrack, room_sid=room, participant_sid=alice, track_sid=mic)

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="audio")

    assert outcome.ok
    assert outcome.result.track_sid != mic


@pytest.mark.parametrize(("name", "code"), [("x" * 129, 53302), ("", 53301), ("bad\x00name", 53303)])
def test_an_invalid_track_name_is_refused(world, name, code):
    room = world.room()
    alice = world.join(room, "alice").participant_sid

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name=name, kind="audio")

    assert outcome.code == code
    assert outcome.events == []


def test_a_track_name_of_128_characters_is_accepted(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid

    assert world.when(PublishTrack, room_sid=room, participant_sid=alice, name="x" * 128, kind="audio").ok


def test_a_connect_with_a_too_long_track_name_connects_nobody(world):
    room = world.room()

    outcome = world.when(
        ConnectParticipant, room=room, identity="alice", tracks=[TrackSpec(name="x" * 129, kind="audio")]
    )

    assert outcome.code == 53302
    assert outcome.events == []


# --- audio-only rooms -----------------------------------------------------------------------


def test_publishing_video_in_an_audio_only_room_is_refused_with_53125(world):
    room = world.room(audio_only=True)
    alice = world.join(room, "alice").participant_sid

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="cam", kind="video")

    assert outcome.code == 53125
    assert outcome.events == []


def test_connecting_with_video_to_an_audio_only_room_is_refused_with_53125(world):
    room = world.room(audio_only=True)

    outcome = world.when(
        ConnectParticipant,
        room=room,
        identity="alice",
        tracks=[
            TrackSpec(name="mic", kind="audio"),
            TrackSpec(name="cam", kind="video"),
        ],
    )

    assert outcome.code == 53125
    assert outcome.events == []
    assert world.connected(room) == set()


def test_audio_and_data_are_fine_in_an_audio_only_room(world):
    room = world.room(audio_only=True)

    assert world.when(
        ConnectParticipant,
        room=room,
        identity="alice",
        tracks=[
            TrackSpec(name="mic", kind="audio"),
            TrackSpec(name="chat", kind="data"),
        ],
    ).ok


# --- the concurrent track cap -----------------------------------------------------------------


def test_the_171st_concurrent_track_in_a_group_room_is_refused_with_53203(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    bob = world.join(room, "bob").participant_sid
    for n in range(100):
        world.publish(room, alice, f"a{n}", "data")
    for n in range(70):
        world.publish(room, bob, f"b{n}", "data")

    outcome = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="one-more", kind="audio")

    assert outcome.code == 53203
    assert outcome.events == []
    assert len(world.published(room)) == 170


def test_an_unpublished_track_frees_room_under_the_track_cap(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    first = world.publish(room, alice, "t0", "data")
    for n in range(1, 170):
        world.publish(room, alice, f"t{n}", "data")
    world.given(UnpublishTrack, room_sid=room, participant_sid=alice, track_sid=first)

    assert world.when(PublishTrack, room_sid=room, participant_sid=alice, name="again", kind="audio").ok


def test_a_connect_whose_tracks_exceed_the_cap_is_refused_with_53203(world):
    room = world.room(type="group-small")
    alice = world.join(room, "alice").participant_sid
    for n in range(169):
        world.publish(room, alice, f"t{n}", "data")

    outcome = world.when(
        ConnectParticipant,
        room=room,
        identity="bob",
        tracks=[
            TrackSpec(name="mic", kind="audio"),
            TrackSpec(name="cam", kind="video"),
        ],
    )

    assert outcome.code == 53203
    assert outcome.events == []


def test_peer_to_peer_rooms_have_no_track_cap(world):
    room = world.room(type="peer-to-peer")
    alice = world.join(room, "alice").participant_sid
    for n in range(170):
        world.publish(room, alice, f"t{n}", "data")

    assert world.when(PublishTrack, room_sid=room, participant_sid=alice, name="more", kind="audio").ok


# --- enable / disable -------------------------------------------------------------------------


def test_disabling_and_enabling_a_track_is_recorded(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    mic = world.publish(room, alice, "mic")

    disabled = world.when(SetTrackEnabled, room_sid=room, participant_sid=alice, track_sid=mic, enabled=False)
    enabled = world.when(SetTrackEnabled, room_sid=room, participant_sid=alice, track_sid=mic, enabled=True)

    assert disabled.names == ["TrackDisabled"]
    assert disabled.one(ev.TrackDisabled).track_sid == mic
    assert enabled.names == ["TrackEnabled"]
    assert enabled.result.track_sid == mic


@pytest.mark.parametrize("enabled", [True, False])
def test_setting_a_track_to_its_current_state_records_nothing(world, enabled):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    mic = world.publish(room, alice, "mic", enabled=enabled)

    outcome = world.when(SetTrackEnabled, room_sid=room, participant_sid=alice, track_sid=mic, enabled=enabled)

    assert outcome.ok
    assert outcome.events == []


def test_a_subscriber_sees_whether_the_track_is_enabled(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    mic = world.publish(room, alice, "mic")
    world.given(SetTrackEnabled, room_sid=room, participant_sid=alice, track_sid=mic, enabled=False)

    outcome = world.when(ConnectParticipant, room=room, identity="bob")

    assert outcome.one(ev.TrackSubscribed).enabled is False
    rows = world.view().tables["subscribed_tracks"].values()
    assert [r["enabled"] for r in rows] == [False]
    world.given(SetTrackEnabled, room_sid=room, participant_sid=alice, track_sid=mic, enabled=True)
    rows = world.view().tables["subscribed_tracks"].values()
    assert [r["enabled"] for r in rows] == [True]


def test_enabling_another_participants_track_is_refused_as_not_found(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    bob = world.join(room, "bob").participant_sid
    mic = world.publish(room, alice, "mic")

    outcome = world.when(SetTrackEnabled, room_sid=room, participant_sid=bob, track_sid=mic, enabled=False)

    assert outcome.code == 20404
    assert outcome.result.error_status == 404
    assert outcome.events == []


# --- unpublish --------------------------------------------------------------------------------


def test_unpublishing_a_track_unsubscribes_its_subscribers_first(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    mic = world.publish(room, alice, "mic")
    world.join(room, "bob")
    world.join(room, "carol")

    outcome = world.when(UnpublishTrack, room_sid=room, participant_sid=alice, track_sid=mic)

    assert outcome.names == ["TrackUnsubscribed", "TrackUnsubscribed", "TrackUnpublished"]
    assert outcome.one(ev.TrackUnpublished).track_sid == mic
    assert world.published(room) == set()
    assert world.subscriptions(room) == {"alice": set(), "bob": set(), "carol": set()}


def test_unpublishing_an_unknown_track_is_refused_as_not_found(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    mic = world.publish(room, alice, "mic")
    world.given(UnpublishTrack, room_sid=room, participant_sid=alice, track_sid=mic)

    outcome = world.when(UnpublishTrack, room_sid=room, participant_sid=alice, track_sid=mic)

    assert outcome.code == 20404
    assert outcome.events == []


def test_a_disconnecting_participant_drops_its_subscriptions_and_unpublishes_its_tracks(world):
    room = world.room()
    alice = world.join(room, "alice", "mic:audio", "cam:video").participant_sid
    world.join(room, "bob", "mic:audio")

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice)

    assert outcome.names == [
        "TrackUnsubscribed",  # alice from bob/mic
        *("TrackUnsubscribed", "TrackUnpublished"),  # bob from alice/mic, then alice/mic goes
        *("TrackUnsubscribed", "TrackUnpublished"),  # bob from alice/cam, then alice/cam goes
        "ParticipantDisconnected",
    ]
    assert world.published(room) == {"bob/mic"}
    assert world.subscriptions(room) == {"bob": set()}
