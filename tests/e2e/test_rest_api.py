"""The `/v1` REST API through the official `twilio` helper library, as a migrating app calls it.

One `openrooms serve` for the module; participants, tracks and recordings are put in place over
NATS the way the media plane will (`rooms.cmd.*`), everything else goes through the library.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

TRACKS = [{"name": "mic", "kind": "audio"}, {"name": "cam", "kind": "video"}]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def raises(code: int, status: int, call: Any) -> dict[str, Any]:
    """The Twilio error body the call failed with (the library raises TwilioRestException for
    records, and a plain TwilioException carrying the response for list pages)."""
    with pytest.raises(TwilioException) as caught:
        call()
    error = caught.value
    if isinstance(error, TwilioRestException):
        body = {"code": error.code, "status": error.status, "message": error.msg}
    else:
        response = error.args[1]
        body = json.loads(response.text)
        assert body["status"] == response.status_code
    assert (body["code"], body["status"]) == (code, status), error
    return body


def raw(service: Any, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    """A request the library would never send (bad bodies, missing auth), answered as JSON."""
    c = service.credentials
    request = urllib.request.Request(service.base_url + path, data=body, method=method)
    request.add_header("Authorization", _basic(c["api_key_sid"], c["api_key_secret"]))
    for key, value in headers.items():
        request.add_header(key.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


# --- rooms ----------------------------------------------------------------------------------------


def test_a_room_created_with_every_parameter_comes_back_as_twilio_shapes_it(twilio_client: Client) -> None:
    unique = name("every")
    room = twilio_client.video.v1.rooms.create(
        unique_name=unique, type="group", status_callback="https://cb.example/status", status_callback_method="GET",
        max_participants=7, record_participants_on_connect=True, video_codecs=["VP8", "H264"], media_region="de1",
        max_participant_duration=600, empty_room_timeout=2, unused_room_timeout=3,
    )  # fmt: skip
    assert room.sid.startswith("RM") and len(room.sid) == 34
    assert (room.unique_name, room.status, room.type) == (unique, "in-progress", "group")
    assert (room.max_participants, room.max_participant_duration) == (7, 600)
    assert (room.empty_room_timeout, room.unused_room_timeout) == (2, 3)
    assert (room.status_callback, room.status_callback_method) == ("https://cb.example/status", "GET")
    assert room.record_participants_on_connect is True
    assert room.video_codecs == ["VP8", "H264"]
    assert room.media_region == "de1"
    assert isinstance(room.date_created, datetime), "dates are in the exact format the library parses"
    assert room.url.endswith(f"/v1/Rooms/{room.sid}") and room.url.startswith("http://")
    assert room.links["participants"] == room.url + "/Participants"
    fetched = twilio_client.video.v1.rooms(room.sid).fetch()
    assert fetched.sid == room.sid and fetched.unique_name == unique
    assert twilio_client.video.v1.rooms(unique).fetch().sid == room.sid, "an in-progress room is found by name"


def test_a_room_without_a_name_is_named_after_its_sid(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create()
    assert room.unique_name == room.sid
    assert (room.type, room.max_participants) == ("group", 50)


def test_completing_a_room_answers_the_completed_room_and_frees_its_name(twilio_client: Client) -> None:
    unique = name("done")
    room = twilio_client.video.v1.rooms.create(unique_name=unique)
    completed = twilio_client.video.v1.rooms(room.sid).update(status="completed")
    assert completed.status == "completed" and completed.end_time is not None and completed.duration is not None
    raises(20404, 404, lambda: twilio_client.video.v1.rooms(unique).fetch())
    assert twilio_client.video.v1.rooms(room.sid).fetch().status == "completed", "by SID, any status"
    raises(53112, 400, lambda: twilio_client.video.v1.rooms(room.sid).update(status="completed"))
    again = twilio_client.video.v1.rooms.create(unique_name=unique)
    assert again.sid != room.sid


def test_room_parameters_out_of_range_answer_their_twilio_codes(twilio_client: Client) -> None:
    rooms = twilio_client.video.v1.rooms
    unique = name("taken")
    rooms.create(unique_name=unique)
    raises(53113, 400, lambda: rooms.create(unique_name=unique))
    raises(53108, 400, lambda: rooms.create(type="huge"))
    raises(53107, 400, lambda: rooms.create(type="go", max_participants=3))
    raises(53109, 400, lambda: rooms.create(empty_room_timeout=61))
    raises(53110, 400, lambda: rooms.create(status_callback_method="PUT"))
    raises(53111, 400, lambda: rooms.create(status_callback="not a url"))
    raises(53123, 400, lambda: rooms.create(max_participant_duration=10))
    raises(53101, 400, lambda: rooms.create(unique_name="x" * 129))
    raises(53124, 400, lambda: rooms.create(type="peer-to-peer", audio_only=True))
    raises(53120, 400, lambda: rooms.create(recording_rules=[{"type": "include"}]))
    raises(53112, 400, lambda: rooms(rooms.create().sid).update(status="in-progress"))


def test_room_lists_filter_like_twilio_and_default_to_in_progress(twilio_client: Client) -> None:
    rooms = twilio_client.video.v1.rooms
    unique = name("listed")
    live = rooms.create(unique_name=unique)
    ended = rooms.create(unique_name=name("ended"))
    rooms(ended.sid).update(status="completed")
    listed = {r.sid for r in rooms.list()}
    assert live.sid in listed and ended.sid not in listed, "no Status: in-progress only"
    assert ended.sid in {r.sid for r in rooms.list(status="completed")}
    assert [r.sid for r in rooms.list(unique_name=unique)] == [live.sid]
    now = datetime.now(UTC)
    assert live.sid in {r.sid for r in rooms.list(date_created_after=now - timedelta(minutes=5))}
    assert live.sid not in {r.sid for r in rooms.list(date_created_after=now + timedelta(days=1))}
    assert live.sid not in {r.sid for r in rooms.list(date_created_before=now - timedelta(days=1))}


def test_room_list_filters_accept_plain_dates_as_the_docs_show(running_service: Any, twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name=name("dated"))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    status, body = raw(running_service, "GET", f"/v1/Rooms?DateCreatedBefore={tomorrow}&PageSize=1000")
    assert status == 200 and room.sid in {r["sid"] for r in body["rooms"]}
    status, body = raw(running_service, "GET", "/v1/Rooms?DateCreatedAfter=2024-13-45")
    assert (status, body["code"]) == (400, 20001)


def test_paging_walks_every_page_through_absolute_next_page_urls(running_service: Any, twilio_client: Client) -> None:
    rooms = twilio_client.video.v1.rooms
    made = [rooms.create(unique_name=name("paged")).sid for _ in range(7)]
    seen = [r.sid for r in rooms.list(page_size=3)]
    assert set(made) <= set(seen) and len(seen) == len(set(seen)), "every room once, across pages"
    page = rooms.page(page_size=3)
    first = [r.sid for r in page]
    assert len(first) == 3
    status, body = raw(running_service, "GET", "/v1/Rooms?PageSize=3")
    meta = body["meta"]
    assert status == 200 and (meta["key"], meta["page"], meta["page_size"]) == ("rooms", 0, 3)
    assert meta["next_page_url"].startswith(running_service.base_url + "/v1/Rooms?")
    assert "PageToken=" in meta["next_page_url"] and "Page=1" in meta["next_page_url"]
    assert meta["first_page_url"] == running_service.base_url + "/v1/Rooms?PageSize=3&Page=0"
    second = page.next_page()
    assert second is not None and not {r.sid for r in second} & set(first)


def test_bad_paging_parameters_are_refused(running_service: Any) -> None:
    for query in ("PageSize=0", "PageSize=1001", "PageSize=ten", "PageToken=not-a-token", "Page=-1"):
        status, body = raw(running_service, "GET", f"/v1/Rooms?{query}")
        assert (status, body["code"], body["status"]) == (400, 20001, 400), query
        assert body["more_info"] == "https://www.twilio.com/docs/errors/20001"


# --- participants and tracks ----------------------------------------------------------------------


@pytest.fixture
def call(running_service: Any, twilio_client: Client) -> dict[str, Any]:
    """A group room with alice (mic, cam) and bob (mic) connected."""
    room = twilio_client.video.v1.rooms.create(unique_name=name("call"))
    alice = running_service.command(
        "connect_participant", command_id=uuid.uuid4().hex, room=room.sid, identity="alice", tracks=TRACKS
    )
    bob = running_service.command(
        "connect_participant", command_id=uuid.uuid4().hex, room=room.sid, identity="bob", tracks=TRACKS[:1]
    )
    return {"room": room, "alice": alice, "bob": bob}


def test_participants_are_listed_and_fetched_by_sid_or_identity(twilio_client: Client, call: dict[str, Any]) -> None:
    room = twilio_client.video.v1.rooms(call["room"].sid)
    listed = {p.identity: p for p in room.participants.list()}
    assert set(listed) == {"alice", "bob"}
    alice = listed["alice"]
    assert (alice.sid, alice.status, alice.room_sid) == (call["alice"]["sid"], "connected", call["room"].sid)
    assert isinstance(alice.start_time, datetime) and alice.end_time is None
    assert room.participants("alice").fetch().sid == alice.sid
    assert room.participants(alice.sid).fetch().identity == "alice"
    assert [p.identity for p in room.participants.list(identity="bob")] == ["bob"]
    assert room.participants.list(status="disconnected") == []
    raises(20404, 404, lambda: room.participants("carol").fetch())


def test_published_and_subscribed_tracks_are_visible(twilio_client: Client, call: dict[str, Any]) -> None:
    room = twilio_client.video.v1.rooms(call["room"].sid)
    alice = room.participants(call["alice"]["sid"])
    published = {t.name: t for t in alice.published_tracks.list()}
    assert {(n, t.kind, t.enabled) for n, t in published.items()} == {("mic", "audio", True), ("cam", "video", True)}
    cam = published["cam"]
    assert alice.published_tracks(cam.sid).fetch().name == "cam"
    assert alice.published_tracks("cam").fetch().sid == cam.sid, "a published track is found by name too"
    bob = room.participants(call["bob"]["sid"])
    subscribed = {t.sid: t for t in bob.subscribed_tracks.list()}
    assert set(subscribed) == {t.sid for t in published.values()}
    assert subscribed[cam.sid].publisher_sid == call["alice"]["sid"]
    assert bob.subscribed_tracks(cam.sid).fetch().participant_sid == call["bob"]["sid"]
    raises(20404, 404, lambda: alice.published_tracks("MT" + "0" * 32).fetch())


def test_subscribe_rules_replace_what_a_participant_receives(twilio_client: Client, call: dict[str, Any]) -> None:
    bob = twilio_client.video.v1.rooms(call["room"].sid).participants(call["bob"]["sid"])
    current = bob.subscribe_rules.fetch()
    assert current.rules == [{"type": "include", "all": True, "kind": None, "publisher": None, "track": None,
                              "priority": None}] or current.rules[0]["type"] == "include"  # fmt: skip
    updated = bob.subscribe_rules.update(rules=[{"type": "exclude", "all": True}, {"type": "include", "kind": "audio"}])
    assert [r["type"] for r in updated.rules] == ["exclude", "include"]
    assert updated.participant_sid == call["bob"]["sid"]
    assert {t.kind for t in bob.subscribed_tracks.list()} == {"audio"}
    raises(53215, 400, lambda: bob.subscribe_rules.update(rules=[]))
    raises(53215, 400, lambda: bob.subscribe_rules.update(rules=[{"type": "include", "all": False}]))
    assert {t.kind for t in bob.subscribed_tracks.list()} == {"audio"}, "a refused update changes nothing"


def test_kicking_a_participant_disconnects_it(twilio_client: Client, call: dict[str, Any]) -> None:
    room = twilio_client.video.v1.rooms(call["room"].sid)
    kicked = room.participants("bob").update(status="disconnected")
    assert (kicked.sid, kicked.status) == (call["bob"]["sid"], "disconnected")
    assert kicked.end_time is not None and kicked.duration is not None
    assert [p.identity for p in room.participants.list()] == ["alice"]
    assert [p.sid for p in room.participants.list(status="disconnected")] == [call["bob"]["sid"]]
    raises(53209, 400, lambda: room.participants(call["alice"]["sid"]).update(status="connected"))


def test_anonymize_replaces_the_identity_after_the_call(twilio_client: Client, call: dict[str, Any]) -> None:
    room = twilio_client.video.v1.rooms(call["room"].sid)
    twilio_client.video.v1.rooms(call["room"].sid).update(status="completed")
    anonymized = room.participants(call["alice"]["sid"]).anonymize().update()
    assert anonymized.identity == call["alice"]["sid"]
    assert room.participants(call["alice"]["sid"]).fetch().identity == call["alice"]["sid"]


def test_a_completed_room_lists_its_participants_as_disconnected(twilio_client: Client, call: dict[str, Any]) -> None:
    room = twilio_client.video.v1.rooms(call["room"].sid)
    room.update(status="completed")
    assert {p.identity for p in room.participants.list()} == {"alice", "bob"}
    assert {p.status for p in room.participants.list()} == {"disconnected"}


# --- recording rules and recordings ---------------------------------------------------------------


def test_recording_rules_start_recordings_that_can_be_listed_fetched_and_deleted(
    running_service: Any, twilio_client: Client, call: dict[str, Any]
) -> None:
    video = twilio_client.video.v1
    room = video.rooms(call["room"].sid)
    assert room.recording_rules.fetch().rules == []
    rules = room.recording_rules.update(rules=[{"type": "include", "kind": "audio"}])
    assert rules.rules[0]["type"] == "include" and rules.rules[0]["kind"] == "audio"
    raises(53120, 400, lambda: room.recording_rules.update(rules=[{"type": "include", "kind": "data"}]))
    recordings = video.recordings.list(grouping_sid=[call["room"].sid])
    assert {r.type for r in recordings} == {"audio"} and len(recordings) == 2, "one per audio track"
    first = recordings[0]
    assert first.grouping_sids["room_sid"] == call["room"].sid and first.status == "processing"
    assert video.recordings(first.sid).fetch().source_sid == first.source_sid
    scoped = room.recordings(first.sid).fetch()
    assert scoped.room_sid == call["room"].sid
    assert {r.sid for r in room.recordings.list()} == {r.sid for r in recordings}
    assert [r.sid for r in video.recordings.list(source_sid=first.source_sid)] == [first.sid]
    assert video.recordings.list(media_type="video", grouping_sid=[call["room"].sid]) == []
    status, body = raw(running_service, "GET", f"/v1/Recordings/{first.sid}/Media")
    assert (status, body["code"]) == (404, 20404), "no media before the recording completes"
    raises(53000, 400, lambda: video.recordings(first.sid).delete())  # still recording
    command_id = uuid.uuid4().hex
    running_service.command(
        "report_recording_started", command_id=command_id, room_sid=call["room"].sid, recording_sid=first.sid
    )
    running_service.command(
        "report_recording_completed", command_id=command_id + "-done", room_sid=call["room"].sid,
        recording_sid=first.sid, size=1234, duration=5, media_location="https://media.example/rec.mka",
    )  # fmt: skip
    done = video.recordings(first.sid).fetch()
    assert (done.status, done.size, done.duration) == ("completed", 1234, 5)
    request = urllib.request.Request(running_service.base_url + f"/v1/Recordings/{first.sid}/Media")
    request.add_header("Authorization", twilio_client.auth and _basic(*twilio_client.auth))
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(request, timeout=10)
    assert (redirected.value.code, redirected.value.headers["Location"]) == (302, "https://media.example/rec.mka")
    assert video.recordings(first.sid).delete() is True
    assert video.recordings(first.sid).fetch().status == "deleted"
    raises(20404, 404, lambda: video.recordings("RT" + "0" * 32).fetch())


# --- errors, auth and what is not built -----------------------------------------------------------


def test_unknown_resources_answer_twilio_404(twilio_client: Client) -> None:
    raises(20404, 404, lambda: twilio_client.video.v1.rooms("RM" + "0" * 32).fetch())
    raises(20404, 404, lambda: twilio_client.video.v1.rooms("no-such-room").participants.list())
    raises(20404, 404, lambda: twilio_client.video.v1.rooms("RM" + "0" * 32).update(status="completed"))


def test_bad_credentials_are_refused_with_20003(running_service: Any) -> None:
    c = running_service.credentials
    for user, password in ((c["api_key_sid"], "wrong"), (c["account_sid"], "wrong"), ("SK" + "1" * 32, "x")):
        client = running_service.client(user, password)
        raises(20003, 401, lambda client=client: client.video.v1.rooms.list())
    request = urllib.request.Request(running_service.base_url + "/v1/Rooms")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=10)
    assert missing.value.code == 401 and missing.value.headers["WWW-Authenticate"].startswith("Basic")


def test_the_account_sid_and_auth_token_work_as_well_as_the_api_key(running_service: Any) -> None:
    c = running_service.credentials
    client = Client(c["account_sid"], c["auth_token"])
    client.video.base_url = running_service.base_url
    assert client.video.v1.rooms.create(unique_name=name("token-auth")).account_sid == c["account_sid"]


def test_a_body_that_is_not_a_form_is_refused(running_service: Any) -> None:
    status, body = raw(running_service, "POST", "/v1/Rooms", b'{"UniqueName": "x"}', Content_Type="application/json")
    assert (status, body["code"]) == (400, 20001)
    status, body = raw(
        running_service, "POST", "/v1/Rooms", b"MaxParticipants=ten", Content_Type="application/x-www-form-urlencoded"
    )
    assert (status, body["code"]) == (400, 53107)
    status, body = raw(
        running_service, "POST", "/v1/Rooms", b"AudioOnly=maybe", Content_Type="application/x-www-form-urlencoded"
    )
    assert (status, body["code"]) == (400, 20001)


def test_a_retried_create_with_the_same_idempotency_token_makes_one_room(running_service: Any) -> None:
    token = uuid.uuid4().hex
    form = f"UniqueName={name('retried')}".encode()
    headers = {"Content_Type": "application/x-www-form-urlencoded", "I_Twilio_Idempotency_Token": token}
    first = raw(running_service, "POST", "/v1/Rooms", form, **headers)
    second = raw(running_service, "POST", "/v1/Rooms", form, **headers)
    assert first[0] == 201 and second[0] == 201 and first[1]["sid"] == second[1]["sid"]


def test_compositions_answer_a_clear_not_implemented_error(twilio_client: Client) -> None:
    error = raises(20501, 501, lambda: twilio_client.video.v1.compositions.list())
    assert "not implemented" in error["message"]
    raises(20501, 501, lambda: twilio_client.video.v1.composition_hooks.list())


def test_group_only_features_are_refused_in_peer_to_peer_and_go_rooms(
    running_service: Any, twilio_client: Client
) -> None:
    create = twilio_client.video.v1.rooms.create
    for room_type in ("peer-to-peer", "go"):
        room = twilio_client.video.v1.rooms.create(unique_name=name(room_type), type=room_type)
        alice = running_service.command(
            "connect_participant", command_id=uuid.uuid4().hex, room=room.sid, identity="alice", tracks=TRACKS
        )
        rooms = twilio_client.video.v1.rooms(room.sid)
        raises(53122, 400, lambda rooms=rooms: rooms.recording_rules.update(rules=[{"type": "include", "all": True}]))
        subscriber = rooms.participants(alice["sid"])
        raises(53117, 400, lambda p=subscriber: p.subscribe_rules.update(rules=[{"type": "exclude", "all": True}]))
        raises(53124, 400, lambda t=room_type: create(type=t, audio_only=True))
        raises(53122, 400, lambda t=room_type: create(type=t, record_participants_on_connect=True))
