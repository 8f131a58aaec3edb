"""Two unmodified twilio-video SDKs in one group room on `openrooms serve`, media through the SFU.

Each participant is its own browser context (own fake camera and microphone); tests/e2e/browser_room.py
drives the pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.browser_room import (
    AUDIO_AND_VIDEO,
    CONNECT,
    connect,
    media_metrics,
    signaling_url,
    start_sending_data,
    token,
    wait_log,
    wait_media_grows,
)

AUDIO_ONLY = {"audio": True, "video": False}


@pytest.fixture
def pages(sdk_pages: Callable[..., Any]) -> Iterator[list[Any]]:
    """Two pages in two browser contexts, each with `Twilio.Video` loaded."""
    yield [sdk_pages(), sdk_pages()]


def connect_both(alice: Any, bob: Any, service: Any, room: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice, then Bob, connected to `room`; what each page's connect() gave."""
    a = connect(alice, service, "alice", room)
    b = connect(bob, service, "bob", room)
    assert a["connected"] and b["connected"], (a, b)
    return a, b


def test_two_browsers_in_a_group_room_see_each_other_and_exchange_media(pages: list[Any], running_service: Any) -> None:
    alice, bob = pages

    a = connect(alice, running_service, "alice", "standup")
    assert a["connected"] is True, a
    b = connect(bob, running_service, "bob", "standup")
    assert b["connected"] is True, b
    assert a["sid"] == b["sid"] and a["sid"].startswith("RM")

    wait_log(alice, "participantConnected:bob")
    assert "present:alice" in bob.evaluate("window.log")
    for page, other in ((alice, "bob"), (bob, "alice")):
        wait_log(page, f"trackSubscribed:{other}:audio")
        wait_log(page, f"trackSubscribed:{other}:video")
    wait_media_grows(alice, "bob")
    wait_media_grows(bob, "alice")
    metrics = media_metrics(running_service)  # the counters that stay at 0 for peer-to-peer rooms
    assert metrics['openrooms_media_sessions{room_type="group"}'] == 2
    assert metrics["openrooms_media_peer_connections"] == 2
    assert metrics["openrooms_media_rtp_packets_received_total"] > 100

    client = running_service.client()
    participants = client.video.v1.rooms(a["sid"]).participants.list(status="connected")
    assert {p.identity for p in participants} == {"alice", "bob"}
    assert {p.sid for p in participants} == {a["participantSid"], b["participantSid"]}
    for participant in participants:
        tracks = client.video.v1.rooms(a["sid"]).participants(participant.sid).published_tracks.list()
        assert sorted(t.kind for t in tracks) == ["audio", "video"]

    bob.evaluate("window.room.disconnect()")
    wait_log(alice, "participantDisconnected:bob")
    assert "disconnected:none" in bob.evaluate("window.log")
    left = client.video.v1.rooms(a["sid"]).participants(b["participantSid"]).fetch()
    assert left.status == "disconnected"


def test_a_participant_removed_over_rest_is_disconnected_without_an_error(
    pages: list[Any], running_service: Any
) -> None:
    alice, bob = pages
    a, b = connect_both(alice, bob, running_service, "kick")

    running_service.client().video.v1.rooms(a["sid"]).participants(b["participantSid"]).update(status="disconnected")

    wait_log(bob, "disconnected:none")
    wait_log(alice, "participantDisconnected:bob")


def test_completing_the_room_over_rest_disconnects_everyone_with_room_completed(
    pages: list[Any], running_service: Any
) -> None:
    alice, bob = pages
    a, _b = connect_both(alice, bob, running_service, "done")

    running_service.client().video.v1.rooms(a["sid"]).update(status="completed")

    wait_log(alice, "disconnected:53118")
    wait_log(bob, "disconnected:53118")


def test_a_token_signed_with_the_wrong_secret_is_refused_with_20107(pages: list[Any], running_service: Any) -> None:
    forged = token(running_service, "mallory", "standup", secret="not-the-secret-not-the-secret-12")

    outcome = pages[0].evaluate(CONNECT, [forged, signaling_url(running_service), "standup", AUDIO_AND_VIDEO])

    assert outcome == {"connected": False, "code": 20107, "message": outcome["message"]}


def test_a_second_connect_with_the_same_identity_disconnects_the_first_with_53205(
    pages: list[Any], running_service: Any
) -> None:
    first, second = pages
    one = connect(first, running_service, "carol", "twins")
    assert one["connected"], one

    two = connect(second, running_service, "carol", "twins")

    assert two["connected"], two
    wait_log(first, "disconnected:53205")


def test_data_track_messages_reach_every_other_participant_through_the_sfu(
    sdk_pages: Callable[..., Any], running_service: Any
) -> None:
    pages = {name: sdk_pages() for name in ("alice", "bob", "carol")}
    outcomes = {name: connect(page, running_service, name, "chat", AUDIO_ONLY) for name, page in pages.items()}
    assert all(o["connected"] for o in outcomes.values()), outcomes

    start_sending_data(pages["alice"], "hello from alice")
    start_sending_data(pages["bob"], "hello from bob")

    for name in ("bob", "carol"):
        wait_log(pages[name], "trackSubscribed:alice:data")
        wait_log(pages[name], "message:alice:hello from alice")
    wait_log(pages["alice"], "message:bob:hello from bob")
    wait_log(pages["carol"], "message:bob:hello from bob")
    room = running_service.client().video.v1.rooms(outcomes["alice"]["sid"])
    published = room.participants(outcomes["alice"]["participantSid"]).published_tracks.list()
    assert sorted(t.kind for t in published) == ["audio", "data"]

    pages["alice"].evaluate("clearInterval(window.sending)")
    pages["alice"].evaluate(
        "window.room.localParticipant.dataTracks.forEach((p) => window.room.localParticipant.unpublishTrack(p.track))"
    )
    wait_log(pages["carol"], "trackUnsubscribed:alice:data")
    wait_log(pages["carol"], "trackUnpublished:alice:data")
