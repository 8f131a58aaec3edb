"""Subscribe rules: Twilio's algebra (§4.3), its validation (53215) and continuous re-evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from domain import events as ev
from domain.commands import (
    AnonymizeParticipant,
    ConnectParticipant,
    DisconnectParticipant,
    PublishTrack,
    UnpublishTrack,
    UpdateSubscribeRules,
)
from domain.rules import Rule

EVERYTHING = {"alice/mic", "alice/cam", "alice/chat", "bob/mic", "bob/cam"}


@pytest.fixture
def stage(world):
    """A group room: alice publishes mic, cam and chat; bob publishes mic and cam; carol watches."""
    room = world.room()
    alice = world.join(room, "alice", "mic:audio", "cam:video", "chat:data")
    bob = world.join(room, "bob", "mic:audio", "cam:video")
    carol = world.join(room, "carol")
    return world, room, {"alice": alice, "bob": bob, "carol": carol}


def carol_with(stage: Any, rules: Any) -> set[str]:
    world, room, people = stage
    world.given(UpdateSubscribeRules, room_sid=room, participant_sid=people["carol"].participant_sid, rules=rules)
    return world.subscriptions(room)["carol"]


# --- defaults -------------------------------------------------------------------------------


def test_by_default_everyone_subscribes_to_every_track_but_their_own(stage):
    world, room, _ = stage

    assert world.subscriptions(room) == {
        "alice": {"bob/mic", "bob/cam"},
        "bob": {"alice/mic", "alice/cam", "alice/chat"},
        "carol": EVERYTHING,
    }


def test_without_automatic_subscription_a_participant_starts_with_exclude_all(stage):
    world, room, _ = stage

    outcome = world.when(ConnectParticipant, room=room, identity="dave", automatic_subscription=False)

    assert outcome.one(ev.ParticipantConnected).subscribe_rules == (Rule(type="exclude", all=True),)
    assert outcome.of(ev.TrackSubscribed) == []
    assert world.subscriptions(room)["dave"] == set()


def test_rules_given_at_connect_select_the_first_subscriptions(stage):
    world, room, _ = stage

    outcome = world.when(
        ConnectParticipant, room=room, identity="dave", subscribe_rules=[{"type": "include", "kind": "audio"}]
    )

    assert outcome.ok
    assert world.subscriptions(room)["dave"] == {"alice/mic", "bob/mic"}


# --- the algebra ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param([{"type": "include", "all": True}], EVERYTHING, id="include all"),
        pytest.param([{"type": "exclude", "all": True}], set(), id="exclude all"),
        pytest.param([{"type": "include", "kind": "audio"}], {"alice/mic", "bob/mic"}, id="include audio"),
        pytest.param([{"type": "include", "kind": "data"}], {"alice/chat"}, id="include data"),
        pytest.param(
            [{"type": "include", "publisher": "alice"}],
            {"alice/mic", "alice/cam", "alice/chat"},
            id="include publisher by identity",
        ),
        pytest.param([{"type": "include", "track": "cam"}], {"alice/cam", "bob/cam"}, id="include track by name"),
        pytest.param(
            [{"type": "include", "publisher": "alice", "kind": "video"}],
            {"alice/cam"},
            id="filters in one rule are ANDed",
        ),
        pytest.param(
            [{"type": "include", "publisher": "bob", "track": "chat"}], set(), id="ANDed filters can select nothing"
        ),
        pytest.param(
            [{"type": "include", "kind": "audio"}, {"type": "include", "kind": "video"}],
            {"alice/mic", "bob/mic", "alice/cam", "bob/cam"},
            id="includes are unioned",
        ),
        pytest.param(
            [{"type": "include", "all": True}, {"type": "exclude", "publisher": "bob"}],
            {"alice/mic", "alice/cam", "alice/chat"},
            id="exclude removes from what is included before",
        ),
        pytest.param(
            [{"type": "exclude", "publisher": "bob"}, {"type": "include", "all": True}],
            EVERYTHING,
            id="exclude removes nothing from the empty start set",
        ),
        pytest.param(
            [
                {"type": "include", "all": True},
                {"type": "exclude", "kind": "video"},
                {"type": "include", "publisher": "bob", "track": "cam"},
            ],
            {"alice/mic", "alice/chat", "bob/mic", "bob/cam"},
            id="rules apply in order",
        ),
        pytest.param([{"type": "exclude", "kind": "video"}], set(), id="a lone exclude selects nothing"),
        pytest.param([{"type": "include", "publisher": "Alice"}], set(), id="publisher is case-sensitive"),
        pytest.param([{"type": "include", "track": "MIC"}], set(), id="track is case-sensitive"),
        pytest.param(
            {"rules": [{"type": "include", "kind": "video"}]}, {"alice/cam", "bob/cam"}, id="rules wrapped in an object"
        ),
        pytest.param(
            [{"type": "include", "kind": "audio", "priority": "high"}],
            {"alice/mic", "bob/mic"},
            id="legacy priority is accepted",
        ),
    ],
)
def test_rules_are_evaluated_in_order_from_the_empty_set(stage, rules, expected):
    assert carol_with(stage, rules) == expected


def test_publisher_and_track_filters_also_match_sids(stage):
    _, _, people = stage
    alice = people["alice"]
    cam = alice.track_sids[1]

    assert carol_with(stage, [{"type": "include", "publisher": alice.participant_sid}]) == {
        "alice/mic",
        "alice/cam",
        "alice/chat",
    }
    assert carol_with(stage, [{"type": "include", "track": cam}]) == {"alice/cam"}


def test_a_participants_own_tracks_never_match_its_rules(stage):
    world, room, people = stage

    world.given(
        UpdateSubscribeRules,
        room_sid=room,
        participant_sid=people["alice"].participant_sid,
        rules=[{"type": "include", "publisher": "alice"}, {"type": "include", "kind": "audio"}],
    )

    assert world.subscriptions(room)["alice"] == {"bob/mic"}


def test_updating_rules_records_them_and_only_the_subscription_changes(stage):
    world, room, people = stage
    carol = people["carol"].participant_sid

    outcome = world.when(
        UpdateSubscribeRules,
        room_sid=room,
        participant_sid=carol,
        rules=[{"type": "include", "kind": "audio"}, {"type": "include", "publisher": "bob"}],
    )

    assert outcome.one(ev.SubscribeRulesUpdated).rules == (
        Rule(type="include", kind="audio"),
        Rule(type="include", publisher="bob"),
    )
    assert outcome.names == ["SubscribeRulesUpdated", "TrackUnsubscribed", "TrackUnsubscribed"]
    assert {e.track_sid for e in outcome.of(ev.TrackUnsubscribed)} == set(people["alice"].track_sids[1:])


def test_each_update_replaces_all_previous_rules(stage):
    carol_with(stage, [{"type": "include", "kind": "audio"}])

    assert carol_with(stage, [{"type": "include", "kind": "video"}]) == {"alice/cam", "bob/cam"}


def test_the_same_rules_again_change_no_subscription(stage):
    world, room, people = stage
    carol = people["carol"].participant_sid

    outcome = world.when(
        UpdateSubscribeRules, room_sid=room, participant_sid=carol, rules=[{"type": "include", "all": True}]
    )

    assert outcome.names == ["SubscribeRulesUpdated"]


def test_rules_can_be_updated_by_identity(stage):
    world, room, _ = stage

    assert world.when(
        UpdateSubscribeRules, room_sid=room, participant_sid="carol", rules=[{"type": "exclude", "all": True}]
    ).ok
    assert world.subscriptions(room)["carol"] == set()


# --- validation -----------------------------------------------------------------------------

INCLUDE_ALL = {"type": "include", "all": True}
INVALID_RULES = [
    pytest.param([], id="empty array"),
    pytest.param({"rules": []}, id="empty wrapped array"),
    pytest.param([{"type": "include", "all": False}], id="all false"),
    pytest.param([{"type": "include", "all": "true"}], id="all as a string"),
    pytest.param([{"type": "include", "all": 1}], id="all as a number"),
    pytest.param([{"type": "include", "all": True, "kind": "audio"}], id="all with kind"),
    pytest.param([{"type": "exclude", "all": True, "publisher": "alice"}], id="all with publisher"),
    pytest.param([{"all": True}], id="missing type"),
    pytest.param([{"type": "allow", "all": True}], id="bad type"),
    pytest.param([{"type": None, "all": True}], id="null type"),
    pytest.param([{"type": "include", "kind": "screen"}], id="bad kind"),
    pytest.param([{"type": "include", "kind": "Audio"}], id="kind is case-sensitive"),
    pytest.param([{"type": "include", "room": "x"}], id="unknown field"),
    pytest.param([{"type": "include"}], id="no filter"),
    pytest.param([{"type": "include", "publisher": ""}], id="empty publisher"),
    pytest.param([{"type": "include", "track": 7}], id="track not a string"),
    pytest.param([{"type": "include", "kind": "audio", "priority": "urgent"}], id="bad priority"),
    pytest.param([INCLUDE_ALL] * 21, id="more than 20 rules"),
    pytest.param(["include"], id="rule not an object"),
    pytest.param("include all", id="not an array"),
    pytest.param({"rules": [INCLUDE_ALL], "other": 1}, id="object with more than rules"),
    pytest.param([INCLUDE_ALL, {"type": "include", "kind": "smell"}], id="one bad rule among good ones"),
]


@pytest.mark.parametrize("rules", INVALID_RULES)
def test_invalid_subscribe_rules_are_refused_with_53215_and_the_active_rules_stay(stage, rules):
    world, room, people = stage
    before = world.subscriptions(room)

    outcome = world.when(
        UpdateSubscribeRules, room_sid=room, participant_sid=people["carol"].participant_sid, rules=rules
    )

    assert outcome.code == 53215
    assert outcome.result.error_status == 400
    assert outcome.events == []
    assert world.subscriptions(room) == before


@pytest.mark.parametrize("rules", INVALID_RULES)
def test_invalid_subscribe_rules_at_connect_connect_nobody(world, rules):
    room = world.room()

    outcome = world.when(ConnectParticipant, room=room, identity="alice", subscribe_rules=rules)

    assert outcome.code == 53215
    assert outcome.events == []


def test_twenty_rules_are_accepted(stage):
    rules = [{"type": "include", "kind": "audio"}] * 19 + [{"type": "exclude", "publisher": "bob"}]

    assert carol_with(stage, rules) == {"alice/mic"}


@pytest.mark.parametrize("room_type", ["peer-to-peer", "go"])
def test_subscribe_rules_in_peer_to_peer_rooms_are_refused_with_53117(world, room_type):
    room = world.room(type=room_type)
    alice = world.join(room, "alice").participant_sid

    outcome = world.when(UpdateSubscribeRules, room_sid=room, participant_sid=alice, rules=[INCLUDE_ALL])

    assert outcome.code == 53117
    assert outcome.events == []


def test_subscribe_rules_of_an_unknown_participant_are_refused_with_53204(stage):
    world, room, _ = stage

    outcome = world.when(UpdateSubscribeRules, room_sid=room, participant_sid="PA" + "7" * 32, rules=[INCLUDE_ALL])

    assert outcome.code == 53204


# --- re-evaluation on every change ------------------------------------------------------------


def test_a_newly_published_track_is_subscribed_by_those_whose_rules_select_it(stage):
    world, room, people = stage
    world.given(
        UpdateSubscribeRules,
        room_sid=room,
        participant_sid=people["carol"].participant_sid,
        rules=[{"type": "include", "kind": "video"}],
    )

    outcome = world.when(
        PublishTrack, room_sid=room, participant_sid=people["bob"].participant_sid, name="screen", kind="video"
    )

    subscribers = {e.participant_sid for e in outcome.of(ev.TrackSubscribed)}
    assert subscribers == {people["alice"].participant_sid, people["carol"].participant_sid}


def test_a_track_no_rule_selects_is_not_subscribed(stage):
    world, room, people = stage
    world.given(
        UpdateSubscribeRules,
        room_sid=room,
        participant_sid=people["carol"].participant_sid,
        rules=[{"type": "include", "kind": "video"}],
    )

    world.given(PublishTrack, room_sid=room, participant_sid=people["bob"].participant_sid, name="chat", kind="data")

    assert "bob/chat" not in world.subscriptions(room)["carol"]
    assert "bob/chat" in world.subscriptions(room)["alice"]


def test_a_rule_naming_a_track_picks_it_up_when_it_is_published(stage):
    world, room, people = stage
    carol_with(stage, [{"type": "include", "track": "screen"}])

    world.given(
        PublishTrack, room_sid=room, participant_sid=people["alice"].participant_sid, name="screen", kind="video"
    )

    assert world.subscriptions(room)["carol"] == {"alice/screen"}


def test_a_rule_naming_a_publisher_picks_up_the_participant_when_it_joins(stage):
    world, room, _ = stage
    carol_with(stage, [{"type": "include", "publisher": "dave"}])

    world.join(room, "dave", "mic:audio")

    assert world.subscriptions(room)["carol"] == {"dave/mic"}


def test_a_rule_naming_an_identity_follows_a_participant_that_reconnects(stage):
    world, room, people = stage
    carol_with(stage, [{"type": "include", "publisher": "bob"}])

    again = world.join(room, "bob", "mic:audio")

    assert again.replaced_participant_sid == people["bob"].participant_sid
    assert world.subscriptions(room)["carol"] == {"bob/mic"}


def test_a_rule_naming_a_participant_sid_does_not_follow_a_reconnect(stage):
    world, room, people = stage
    carol_with(stage, [{"type": "include", "publisher": people["bob"].participant_sid}])

    world.join(room, "bob", "mic:audio")

    assert world.subscriptions(room)["carol"] == set()


def test_an_unpublished_track_is_unsubscribed_everywhere(stage):
    world, room, people = stage
    alice = people["alice"]

    world.given(UnpublishTrack, room_sid=room, participant_sid=alice.participant_sid, track_sid=alice.track_sids[0])

    assert world.subscriptions(room) == {
        "alice": {"bob/mic", "bob/cam"},
        "bob": {"alice/cam", "alice/chat"},
        "carol": EVERYTHING - {"alice/mic"},
    }


def test_a_publisher_leaving_is_unsubscribed_everywhere(stage):
    world, room, people = stage

    world.given(DisconnectParticipant, room_sid=room, participant_sid=people["bob"].participant_sid)

    assert world.subscriptions(room) == {
        "alice": set(),
        "carol": {"alice/mic", "alice/cam", "alice/chat"},
    }


def test_anonymizing_a_publisher_unsubscribes_rules_that_named_its_identity(stage):
    world, room, people = stage
    carol_with(stage, [{"type": "include", "publisher": "bob"}])

    outcome = world.when(AnonymizeParticipant, room_sid=room, participant_sid=people["bob"].participant_sid)

    assert len(outcome.of(ev.TrackUnsubscribed)) == 2
    assert world.subscriptions(room)["carol"] == set()


def test_a_subscriber_leaving_drops_its_subscriptions(stage):
    world, room, people = stage

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=people["carol"].participant_sid)

    assert len(outcome.of(ev.TrackUnsubscribed)) == 5
    assert {e.participant_sid for e in outcome.of(ev.TrackUnsubscribed)} == {people["carol"].participant_sid}
    assert "carol" not in world.subscriptions(room)


@pytest.mark.parametrize("room_type", ["peer-to-peer", "go"])
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"automatic_subscription": False}, id="without automatic subscription"),
        pytest.param({"subscribe_rules": [{"type": "include", "kind": "data"}]}, id="with subscribe rules"),
    ],
)
def test_peer_to_peer_participants_subscribe_to_everything_whatever_they_ask(world, room_type, options):
    # Media is direct in P2P rooms: every publisher sends every track, Twilio ignores these options there.
    room = world.room(type=room_type)
    world.join(room, "alice", "mic:audio", "cam:video")

    outcome = world.when(ConnectParticipant, room=room, identity="bob", **options)

    assert outcome.one(ev.ParticipantConnected).subscribe_rules == (Rule(type="include", all=True),)
    assert world.subscriptions(room) == {"alice": set(), "bob": {"alice/mic", "alice/cam"}}
