"""The read model against a real store: the follower applies the log exactly once, and the
queries answer with Twilio's filters and paging.

Every test runs on a SQLite file and on an embedded PostgreSQL database. The oracle for the
rows is `MemoryView`: the same projections applied to the whole log in memory, which is what
`openrooms replay --verify` compares with.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.bootstrap import open_application, open_read_model
from adapters.clock import FakeClock
from adapters.replay import read_log, stored_tables
from adapters.store.queries import PageTokenError, Queries
from adapters.store.read_model import Follower, ReadModel
from domain import commands as cmd
from domain import events as ev
from domain.audit import compare_tables
from domain.engine import Engine, RoomsApplication
from domain.projections import MemoryView, micros, project
from domain.results import CommandResult
from domain.settings import AccountPolicy

ACCOUNT_SID = "AC" + "0" * 32
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
JOIN_TIMEOUT = 60.0


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def mic(name: str = "mic") -> cmd.TrackSpec:
    return cmd.TrackSpec(name=name, kind="audio")


def cam(name: str = "cam") -> cmd.TrackSpec:
    return cmd.TrackSpec(name=name, kind="video")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    fixture = "sqlite_store_url" if request.param == "sqlite" else "postgres_store_url"
    return str(request.getfixturevalue(fixture))


class Reader:
    """A follower with its own application and read-model connections, as another process has.

    `applied` lists (aggregate, version) of every event this follower wrote to the read model.
    """

    def __init__(self, url: str, batch_size: int = 2000) -> None:
        self.app: RoomsApplication = open_application(url)
        self.read_model: ReadModel = open_read_model(url)
        self.follower = Follower(self.app, self.read_model, ACCOUNT_SID, batch_size=batch_size)
        self.applied: list[tuple[str, int]] = []
        self.follower.listeners.append(self._record)

    def _record(self, events: list[ev.Event]) -> None:
        self.applied.extend((e.originator_id, e.originator_version) for e in events)

    def close(self) -> None:
        self.read_model.db.close()
        self.app.close()


class Rooms:
    """An engine on the store, a follower feeding the read model, and the queries over it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clock = FakeClock(START)
        self.app = open_application(url)
        self.engine = Engine(self.app, policy=AccountPolicy(account_sid=ACCOUNT_SID), sids=new_sid, clock=self.clock)
        self.reader = Reader(url)
        self.queries = Queries(self.reader.read_model, self.reader.follower.refresh)
        self._ids = itertools.count(1)
        self._closing: list[Reader] = [self.reader]

    def command(self, command_type: type[cmd.Command], **fields: Any) -> cmd.Command:
        return command_type(command_id=f"cmd-{next(self._ids)}", **fields)

    def run(self, command_type: type[cmd.Command], **fields: Any) -> CommandResult:
        return self.engine.execute(self.command(command_type, **fields))

    def ok(self, command_type: type[cmd.Command], **fields: Any) -> CommandResult:
        result = self.run(command_type, **fields)
        assert result.ok, f"{command_type.__name__} was refused: {result}"
        return result

    def room(self, **fields: Any) -> str:
        sid = self.ok(cmd.CreateRoom, **fields).room_sid
        assert sid is not None
        return sid

    def other_reader(self, batch_size: int = 2000) -> Reader:
        reader = Reader(self.url, batch_size)
        self._closing.append(reader)
        return reader

    # --- the oracle ----------------------------------------------------------------------

    def log(self) -> list[tuple[int, Any]]:
        return list(read_log(self.app))

    def last_position(self) -> int:
        return self.log()[-1][0]

    def expected_view(self) -> MemoryView:
        view = MemoryView()
        for _, event in self.log():
            view.apply(project(event, ACCOUNT_SID))
        return view

    def recordings_of(self, room_sid: str) -> list[str]:
        return [
            e.recording_sid
            for _, e in self.log()
            if isinstance(e, ev.RecordingRequested) and e.originator_id == room_sid
        ]

    def close(self) -> None:
        for reader in self._closing:
            reader.close()
        self.app.close()


@pytest.fixture
def rooms(store_url: str) -> Iterator[Rooms]:
    world = Rooms(store_url)
    yield world
    world.close()


def assert_read_model_matches_the_log(rooms: Rooms, read_model: ReadModel) -> None:
    expected = rooms.expected_view().tables
    stored = stored_tables(read_model)
    assert stored == expected, "\n".join(compare_tables(expected, stored))
    assert read_model.position() == rooms.last_position()


def busy_day(rooms: Rooms, day: int, *, between: Any = None) -> None:
    """Every kind of event: rooms of each type, joins, tracks, rules, recordings, leaves, ends.

    `between()` runs after each command (the racing tests let followers run there).
    """
    step = between or (lambda: None)

    def ok(command_type: type[cmd.Command], **fields: Any) -> CommandResult:
        result = rooms.ok(command_type, **fields)
        step()
        return result

    rooms.clock.advance(timedelta(minutes=10))
    name = f"standup-{day}"
    room = ok(cmd.CreateRoom, unique_name=name, record_participants_on_connect=True).room_sid
    assert room is not None
    p2p = ok(cmd.CreateRoom, type="peer-to-peer").room_sid
    assert p2p is not None
    alice = ok(cmd.ConnectParticipant, room=room, identity="alice", tracks=[mic(), cam()])
    bob = ok(cmd.ConnectParticipant, room=name, identity="bob", tracks=[mic()])
    carol = ok(cmd.ConnectParticipant, room=p2p, identity="carol", tracks=[mic()])
    ok(cmd.ConnectParticipant, room=f"ad-hoc-{day}", identity="dave")
    assert alice.participant_sid and bob.participant_sid and carol.participant_sid
    ok(cmd.SetTrackEnabled, room_sid=room, participant_sid="alice", track_sid=alice.track_sids[1], enabled=False)
    ok(cmd.UpdateSubscribeRules, room_sid=room, participant_sid="bob", rules=[{"type": "include", "kind": "audio"}])
    screen = ok(cmd.PublishTrack, room_sid=room, participant_sid="bob", name="screen", kind="video").track_sid
    assert screen is not None
    first, *_ = rooms.recordings_of(room)
    ok(cmd.ReportRecordingStarted, room_sid=room, recording_sid=first)
    ok(
        cmd.ReportRecordingCompleted,
        room_sid=room,
        recording_sid=first,
        size=1024,
        duration=60,
        media_location=f"file:///recordings/{first}.mka",
    )
    ok(cmd.UnpublishTrack, room_sid=room, participant_sid=bob.participant_sid, track_sid=screen)
    ok(cmd.UpdateRecordingRules, room_sid=room, rules=[{"type": "exclude", "all": True}])
    rooms.clock.advance(timedelta(minutes=1))
    ok(cmd.ConnectParticipant, room=room, identity="bob", tracks=[mic()])  # replaces the first bob
    ok(cmd.AnonymizeParticipant, room_sid=room, participant_sid=alice.participant_sid)
    ok(cmd.DisconnectParticipant, room_sid=p2p, participant_sid="carol")
    ok(cmd.CompleteRoom, room_sid=name)
    refused = rooms.run(cmd.ConnectParticipant, room=room, identity="erin")  # the room has ended
    assert not refused.ok


# --- the follower: exactly once --------------------------------------------------------------


def test_the_follower_writes_every_event_once_and_a_second_catch_up_writes_nothing(rooms: Rooms) -> None:
    busy_day(rooms, 1)
    reader = rooms.other_reader(batch_size=7)

    position = reader.follower.catch_up()
    applied_first = list(reader.applied)
    again = reader.follower.catch_up()

    assert position == again == rooms.last_position()
    assert reader.applied == applied_first, "the second catch-up wrote events again"
    assert sorted(applied_first) == sorted((e.originator_id, e.originator_version) for _, e in rooms.log())
    assert_read_model_matches_the_log(rooms, reader.read_model)


def test_a_follower_overtaken_between_its_read_and_its_write_writes_nothing(rooms: Rooms) -> None:
    busy_day(rooms, 1)
    slow, fast = rooms.other_reader(batch_size=5), rooms.other_reader(batch_size=5)
    select = slow.app.recorder.select_notifications
    overtaken: list[int] = []

    def read_then_be_overtaken(*args: Any, **kwargs: Any) -> Any:
        notifications = select(*args, **kwargs)
        if not overtaken:
            overtaken.append(fast.follower.catch_up())  # the other follower moves the position on
        return notifications

    slow.app.recorder.select_notifications = read_then_be_overtaken  # type: ignore[method-assign]
    position = slow.follower.catch_up()

    assert overtaken == [rooms.last_position()]
    assert position == rooms.last_position()
    assert slow.applied == [], "the overtaken follower wrote its stale batch"
    assert Counter(fast.applied) == Counter((e.originator_id, e.originator_version) for _, e in rooms.log())
    assert_read_model_matches_the_log(rooms, fast.read_model)


def test_two_followers_racing_from_threads_while_commands_run_apply_every_event_exactly_once(rooms: Rooms) -> None:
    racers = [rooms.other_reader(batch_size=3), rooms.other_reader(batch_size=3)]
    turn = threading.Barrier(len(racers) + 1, timeout=JOIN_TIMEOUT)
    done = threading.Event()
    failures: list[BaseException] = []

    def follow(reader: Reader) -> None:
        try:
            while True:
                turn.wait()  # both followers start together, while the next command runs
                if done.is_set():
                    return
                reader.follower.catch_up()
        except BaseException as exc:
            failures.append(exc)
            turn.abort()

    threads = [threading.Thread(target=follow, args=(r,), name=f"follower-{i}") for i, r in enumerate(racers)]
    for thread in threads:
        thread.start()
    try:
        for day in (1, 2):
            busy_day(rooms, day, between=turn.wait)
        done.set()
        turn.wait()
    except threading.BrokenBarrierError:
        pytest.fail(f"a follower failed: {failures!r}")
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not failures, failures
    for reader in racers:
        reader.follower.catch_up()

    delivered = Counter(racers[0].applied) + Counter(racers[1].applied)
    in_log = Counter((e.originator_id, e.originator_version) for _, e in rooms.log())
    assert delivered == in_log, "some event was applied twice or never"
    for reader in racers:
        assert_read_model_matches_the_log(rooms, reader.read_model)


def test_a_restarted_follower_resumes_from_the_stored_position_without_duplicates(rooms: Rooms) -> None:
    busy_day(rooms, 1)
    before = rooms.other_reader(batch_size=4)
    stopped_at = before.follower.catch_up()
    before.close()

    restarted = rooms.other_reader(batch_size=4)
    assert restarted.follower.catch_up() == stopped_at
    assert restarted.applied == [], "a restart re-applied events it had already written"

    busy_day(rooms, 2)
    reopened = rooms.other_reader(batch_size=4)
    reopened.follower.catch_up()

    after_stop = [(e.originator_id, e.originator_version) for position, e in rooms.log() if position > stopped_at]
    assert reopened.applied == after_stop
    assert_read_model_matches_the_log(rooms, reopened.read_model)


def test_a_reader_waiting_for_another_processes_follower_writes_nothing_itself(rooms: Rooms) -> None:
    busy_day(rooms, 1)
    waiting, other = rooms.other_reader(), rooms.other_reader()
    looked = threading.Event()
    position = waiting.read_model.position

    def look() -> int:
        looked.set()
        return position()

    waiting.read_model.position = look  # type: ignore[method-assign]
    thread = threading.Thread(target=waiting.follower.wait_until_followed, kwargs={"timeout": JOIN_TIMEOUT})
    thread.start()
    assert looked.wait(JOIN_TIMEOUT), "the waiting reader never looked at the read model"
    other.follower.catch_up()  # the relay's process, say
    thread.join(JOIN_TIMEOUT)

    assert not thread.is_alive(), "still waiting after the other follower reached the log's end"
    assert waiting.applied == [], "the waiting reader wrote the other follower's rows again"
    assert position() == rooms.last_position()
    assert_read_model_matches_the_log(rooms, waiting.read_model)


def test_a_reader_whose_other_follower_does_not_come_catches_up_itself_after_its_timeout(rooms: Rooms) -> None:
    busy_day(rooms, 1)
    waiting = rooms.other_reader()

    waiting.follower.wait_until_followed(timeout=0.05)  # nobody else follows

    assert sorted(waiting.applied) == sorted((e.originator_id, e.originator_version) for _, e in rooms.log())
    assert_read_model_matches_the_log(rooms, waiting.read_model)


def test_a_query_right_after_a_command_sees_it_without_waiting_for_the_follower(rooms: Rooms) -> None:
    q = rooms.queries
    room = rooms.room(unique_name="read-your-writes")
    assert q.room(room) is not None
    alice = rooms.ok(cmd.ConnectParticipant, room=room, identity="alice", tracks=[mic()])
    row = q.participant(room, "alice")
    assert row is not None and row["sid"] == alice.participant_sid
    assert [t["name"] for t in q.published_tracks(str(alice.participant_sid)).rows] == ["mic"]

    rooms.ok(cmd.CompleteRoom, room_sid=room)
    assert q.room("read-your-writes") is None
    assert q.participant(room, "alice") is None
    assert q.room(room)["status"] == "completed"  # type: ignore[index]
    assert rooms.reader.read_model.position() == rooms.last_position()


# --- queries: rooms ----------------------------------------------------------------------------


def test_rooms_lists_in_progress_rooms_by_default_newest_first(rooms: Rooms) -> None:
    first = rooms.room(unique_name="first")
    rooms.clock.advance(timedelta(minutes=1))
    ended = rooms.room(unique_name="ended")
    rooms.ok(cmd.CompleteRoom, room_sid=ended)
    rooms.clock.advance(timedelta(minutes=1))
    third = rooms.room()

    assert [r["sid"] for r in rooms.queries.rooms().rows] == [third, first]
    assert [r["sid"] for r in rooms.queries.rooms(status="completed").rows] == [ended]
    assert [r["unique_name"] for r in rooms.queries.rooms(unique_name="first").rows] == ["first"]
    assert rooms.queries.rooms(unique_name="ended").rows == []
    assert [r["sid"] for r in rooms.queries.rooms(unique_name="ended", status="completed").rows] == [ended]
    assert rooms.queries.rooms(status="completed", unique_name="first").rows == []


def test_date_created_after_is_inclusive_and_date_created_before_is_exclusive(rooms: Rooms) -> None:
    at: list[int] = []
    for hour in range(4):
        rooms.clock.advance(timedelta(hours=1))
        rooms.room(unique_name=f"hour-{hour}")
        at.append(micros(rooms.clock.now()) or 0)

    def names(**filters: Any) -> list[str]:
        return sorted(r["unique_name"] for r in rooms.queries.rooms(**filters).rows)

    assert names(created_after=at[1]) == ["hour-1", "hour-2", "hour-3"]
    assert names(created_before=at[2]) == ["hour-0", "hour-1"]
    assert names(created_after=at[1], created_before=at[3]) == ["hour-1", "hour-2"]
    assert names(created_after=at[3] + 1) == []


def test_paging_through_rooms_returns_each_room_once_in_order_even_when_rooms_share_a_timestamp(rooms: Rooms) -> None:
    sids: list[str | None] = []
    for _ in range(4):
        rooms.clock.advance(timedelta(seconds=1))
        # Three rooms per instant: only the SID orders them.
        sids += [r.room_sid for r in rooms.engine.execute_batch([rooms.command(cmd.CreateRoom) for _ in range(3)])]
    expected = [r["sid"] for r in rooms.queries.rooms(page_size=100).rows]
    assert set(expected) == set(sids) and len(expected) == len(sids)

    pages, token = [], None
    while True:
        page = rooms.queries.rooms(page_size=5, page_token=token)
        pages.append([r["sid"] for r in page.rows])
        if page.next_token is None:
            break
        token = page.next_token
        if len(pages) == 1:
            rooms.clock.advance(timedelta(seconds=1))
            rooms.room()  # created while paging: newer than every page token, never shown

    assert [len(p) for p in pages] == [5, 5, 2]
    assert [sid for page in pages for sid in page] == expected


def test_a_page_token_that_is_not_ours_is_refused(rooms: Rooms) -> None:
    rooms.room()
    with pytest.raises(PageTokenError):
        rooms.queries.rooms(page_token="not-a-token")


def test_a_room_is_found_by_sid_in_any_status_but_by_name_only_while_in_progress(rooms: Rooms) -> None:
    old = rooms.room(unique_name="weekly")
    assert rooms.queries.room("weekly")["sid"] == old  # type: ignore[index]
    rooms.ok(cmd.CompleteRoom, room_sid="weekly")
    assert rooms.queries.room("weekly") is None
    assert rooms.queries.room(old)["status"] == "completed"  # type: ignore[index]

    new = rooms.room(unique_name="weekly")
    assert rooms.queries.room("weekly")["sid"] == new  # type: ignore[index]
    assert rooms.queries.room(old)["unique_name"] == "weekly"  # type: ignore[index]
    assert rooms.queries.room("RM" + "f" * 32) is None


# --- queries: participants, tracks, rules ---------------------------------------------------


def test_a_participant_is_found_by_sid_or_by_the_identity_of_the_connected_one(rooms: Rooms) -> None:
    room = rooms.room()
    first = rooms.ok(cmd.ConnectParticipant, room=room, identity="alice").participant_sid
    rooms.clock.advance(timedelta(seconds=5))
    second = rooms.ok(cmd.ConnectParticipant, room=room, identity="alice").participant_sid  # replaces the first
    assert first and second

    by_identity = rooms.queries.participant(room, "alice")
    assert by_identity is not None and by_identity["sid"] == second
    replaced = rooms.queries.participant(room, first)
    assert replaced is not None
    assert (replaced["status"], replaced["disconnect_reason"], replaced["error_code"]) == (
        "disconnected",
        "duplicate-identity",
        53205,
    )
    assert replaced["duration"] == 5

    rooms.ok(cmd.DisconnectParticipant, room_sid=room, participant_sid="alice")
    assert rooms.queries.participant(room, "alice") is None
    assert rooms.queries.participant(room, second)["status"] == "disconnected"  # type: ignore[index]
    assert rooms.queries.participant(rooms.room(), second) is None  # not in that room
    listed = rooms.queries.participants(room, status="disconnected")
    assert [r["sid"] for r in listed.rows] == [first, second]
    assert rooms.queries.participants(room, status="connected").rows == []


def test_published_and_subscribed_tracks_follow_publishes_toggles_and_unpublishes(rooms: Rooms) -> None:
    room = rooms.room()
    alice = rooms.ok(cmd.ConnectParticipant, room=room, identity="alice", tracks=[mic(), cam()])
    bob = rooms.ok(cmd.ConnectParticipant, room=room, identity="bob")
    a, b = str(alice.participant_sid), str(bob.participant_sid)
    mic_sid, cam_sid = alice.track_sids

    published = rooms.queries.published_tracks(a).rows
    assert {(t["name"], t["kind"], t["enabled"]) for t in published} == {("mic", "audio", True), ("cam", "video", True)}
    assert rooms.queries.published_track(a, "cam")["sid"] == cam_sid  # type: ignore[index]
    assert rooms.queries.published_track(a, mic_sid)["name"] == "mic"  # type: ignore[index]
    subscribed = rooms.queries.subscribed_tracks(b).rows
    assert {(t["sid"], t["publisher_sid"]) for t in subscribed} == {(mic_sid, a), (cam_sid, a)}
    assert rooms.queries.subscribed_tracks(a).rows == []  # never one's own tracks

    rooms.ok(cmd.SetTrackEnabled, room_sid=room, participant_sid=a, track_sid=cam_sid, enabled=False)
    assert rooms.queries.published_track(a, cam_sid)["enabled"] is False  # type: ignore[index]
    assert rooms.queries.subscribed_track(b, cam_sid)["enabled"] is False  # type: ignore[index]

    rooms.ok(cmd.UnpublishTrack, room_sid=room, participant_sid=a, track_sid=cam_sid)
    assert rooms.queries.published_track(a, cam_sid) is None
    assert rooms.queries.subscribed_track(b, cam_sid) is None
    assert [t["sid"] for t in rooms.queries.subscribed_tracks(b).rows] == [mic_sid]


def rule(rule_type: str, **filters: Any) -> dict[str, Any]:
    """A rule as Twilio returns it: every filter key present, the absent ones null."""
    return {"type": rule_type, "all": None, "publisher": None, "track": None, "kind": None, "priority": None, **filters}


def test_subscribe_rules_are_stored_as_twilio_returns_them_and_drive_subscriptions(rooms: Rooms) -> None:
    room = rooms.room()
    alice = rooms.ok(cmd.ConnectParticipant, room=room, identity="alice", tracks=[mic(), cam()])
    bob = rooms.ok(cmd.ConnectParticipant, room=room, identity="bob", automatic_subscription=False)
    b = str(bob.participant_sid)
    rules = rooms.queries.subscribe_rules(b)
    assert rules is not None and rules["room_sid"] == room
    assert json.loads(rules["rules"]) == [rule("exclude", all=True)]
    assert rooms.queries.subscribed_tracks(b).rows == []

    rooms.clock.advance(timedelta(seconds=30))
    rooms.ok(cmd.UpdateSubscribeRules, room_sid=room, participant_sid=b, rules=[{"type": "include", "kind": "video"}])
    updated = rooms.queries.subscribe_rules(b)
    assert updated is not None
    assert json.loads(updated["rules"]) == [rule("include", kind="video")]
    assert updated["date_updated"] == updated["date_created"] + 30_000_000
    assert [t["sid"] for t in rooms.queries.subscribed_tracks(b).rows] == [alice.track_sids[1]]
    assert rooms.queries.subscribe_rules("PA" + "0" * 32) is None


def test_recording_rules_exist_for_group_rooms_only_and_follow_updates(rooms: Rooms) -> None:
    group = rooms.room(type="group")
    go = rooms.room(type="go")
    initial = rooms.queries.recording_rules(group)
    assert initial is not None and json.loads(initial["rules"]) == []
    assert rooms.queries.recording_rules(go) is None

    rooms.ok(cmd.UpdateRecordingRules, room_sid=group, rules=[{"type": "include", "kind": "audio"}])
    updated = rooms.queries.recording_rules(group)
    assert updated is not None and json.loads(updated["rules"]) == [rule("include", kind="audio")]


def test_recordings_follow_their_lifecycle_and_filter_by_room_status_source_and_type(rooms: Rooms) -> None:
    room = rooms.room(record_participants_on_connect=True)
    other = rooms.room(record_participants_on_connect=True)
    alice = rooms.ok(cmd.ConnectParticipant, room=room, identity="alice", tracks=[mic(), cam()])
    rooms.clock.advance(timedelta(minutes=1))
    rooms.ok(cmd.ConnectParticipant, room=other, identity="zoe", tracks=[mic()])
    mic_sid, cam_sid = alice.track_sids
    by_track = {r["source_sid"]: r for r in rooms.queries.recordings(room_sid=room).rows}
    assert set(by_track) == {mic_sid, cam_sid}
    assert {(r["status"], r["type"], r["codec"], r["container_format"]) for r in by_track.values()} == {
        ("processing", "audio", "OPUS", "mka"),
        ("processing", "video", "VP8", "mkv"),
    }
    audio = by_track[mic_sid]["sid"]

    rooms.ok(cmd.ReportRecordingStarted, room_sid=room, recording_sid=audio)
    rooms.ok(
        cmd.ReportRecordingCompleted,
        room_sid=room,
        recording_sid=audio,
        size=4096,
        duration=12,
        media_location="file:///r.mka",
    )
    done = rooms.queries.recording(audio)
    assert done is not None
    assert (done["status"], done["size"], done["duration"], done["media_location"]) == (
        "completed",
        4096,
        12,
        "file:///r.mka",
    )
    assert done["account_sid"] == ACCOUNT_SID and done["participant_sid"] == alice.participant_sid

    assert [r["sid"] for r in rooms.queries.recordings(status="completed").rows] == [audio]
    assert [r["source_sid"] for r in rooms.queries.recordings(source_sid=cam_sid).rows] == [cam_sid]
    assert {r["room_sid"] for r in rooms.queries.recordings(media_type="audio").rows} == {room, other}
    assert [r["room_sid"] for r in rooms.queries.recordings(grouping_sids=[other]).rows] == [other]
    assert {r["source_sid"] for r in rooms.queries.recordings(grouping_sids=[str(alice.participant_sid)]).rows} == {
        mic_sid,
        cam_sid,
    }
    newest_first = [r["room_sid"] for r in rooms.queries.recordings().rows]
    assert newest_first[0] == other

    rooms.ok(cmd.DeleteRecording, room_sid=room, recording_sid=audio)
    assert rooms.queries.recording(audio)["status"] == "deleted"  # type: ignore[index]
