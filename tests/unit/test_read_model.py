"""The read model rebuilt from the log agrees with the engine's state, whatever the commands.

The REST API answers from the read model (domain/projections.py applied to the log); the
engine decides from its aggregates. For random command sequences, after every command, both
must tell the same story: room status, connected participants, published tracks, subscriptions
(with their enabled flag), subscribe rules, recording rules and recordings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import commands as cmd
from domain.engine import Engine, RoomsApplication
from domain.ids import CountingSidSource
from domain.projections import MemoryView, project, rules_json
from domain.room import Room
from domain.settings import AccountPolicy

ACCOUNT_SID = "AC" + "2" * 32
IDENTITIES = ("alice", "bob", "carol")
TRACKS = (("mic", "audio"), ("cam", "video"), ("chat", "data"))
SUBSCRIBE_RULES = (
    [{"type": "include", "all": True}],
    [{"type": "exclude", "all": True}],
    [{"type": "include", "kind": "video"}],
    [{"type": "include", "all": True}, {"type": "exclude", "publisher": "alice"}],
    [{"type": "include", "track": "mic"}],
)
RECORDING_RULES = (
    [{"type": "include", "all": True}],
    [{"type": "exclude", "all": True}],
    [{"type": "include", "kind": "audio"}],
)

BY_PARTICIPANT = frozenset({"disconnect", "publish", "rules", "anonymize"})

index = st.integers(0, 7)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(("group", "group-small", "go")), st.booleans()),
        st.tuples(
            st.just("connect"),
            index,
            st.sampled_from(IDENTITIES),
            st.lists(st.sampled_from(TRACKS), max_size=2, unique=True),
            st.booleans(),
        ),
        st.tuples(st.just("disconnect"), index, index, st.sampled_from(("left", "kicked"))),
        st.tuples(st.just("publish"), index, index, st.sampled_from(TRACKS)),
        st.tuples(st.just("toggle"), index, index, st.booleans()),
        st.tuples(st.just("unpublish"), index, index),
        st.tuples(st.just("rules"), index, index, st.sampled_from(SUBSCRIBE_RULES)),
        st.tuples(st.just("anonymize"), index, index),
        st.tuples(st.just("recording_rules"), index, st.sampled_from(RECORDING_RULES)),
        st.tuples(st.just("recording_report"), index, index, st.sampled_from(("start", "complete", "fail"))),
        st.tuples(st.just("complete"), index),
        st.tuples(st.just("advance"), st.sampled_from((1, 6, 240))),
    ),
    max_size=40,
)


class Driver:
    """Turns abstract operations into commands against whatever currently exists."""

    def __init__(self) -> None:
        self.now = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
        self.app = RoomsApplication(env={"PERSISTENCE_MODULE": "adapters.store.memory:Factory"})
        self.engine = Engine(
            self.app, policy=AccountPolicy(account_sid=ACCOUNT_SID), sids=CountingSidSource(), clock=lambda: self.now
        )
        self.view = MemoryView()
        self.position = 0
        self.count = 0

    def execute(self, command_type: type[cmd.Command], **fields: Any) -> None:
        self.count += 1
        self.engine.execute(command_type(command_id=f"c{self.count}", **fields))
        for n in self.app.recorder.select_notifications(self.position + 1, 100_000):
            self.view.apply(project(self.app.mapper.to_domain_event(n), ACCOUNT_SID))
            self.position = n.id

    def rooms(self) -> list[Room]:
        return sorted(self.engine.cached_rooms(), key=lambda r: r.sid)

    def room(self, i: int) -> Room | None:
        """The i-th live room (index 7: the i-th of all rooms, so ended rooms get commands too)."""
        rooms = [r for r in self.rooms() if r.in_progress and i != 7] or self.rooms()
        return rooms[i % len(rooms)] if rooms else None

    def do(self, op: tuple[Any, ...]) -> None:
        kind, *args = op
        if kind == "create":
            self.execute(cmd.CreateRoom, type=args[0], record_participants_on_connect=args[1] and args[0] != "go")
            return
        if kind == "advance":
            self.now += timedelta(minutes=args[0])
            for room in self.rooms():
                self.execute(cmd.ExpireDeadlines, room_sid=room.sid)
            return
        room = self.room(args[0])
        if room is None:
            return
        participants = sorted(room.participants) or ["PA" + "0" * 32]
        participant = participants[args[1] % len(participants)] if kind in BY_PARTICIPANT else ""
        tracks = sorted(room.tracks)
        track = room.tracks[tracks[args[1] % len(tracks)]] if tracks and kind in ("toggle", "unpublish") else None
        if kind == "connect":
            specs = [cmd.TrackSpec(name=n, kind=k) for n, k in args[2]]  # type: ignore[arg-type]
            self.execute(
                cmd.ConnectParticipant, room=room.sid, identity=args[1], tracks=specs, automatic_subscription=args[3]
            )
        elif kind == "disconnect":
            self.execute(cmd.DisconnectParticipant, room_sid=room.sid, participant_sid=participant, reason=args[2])
        elif kind == "publish":
            self.execute(
                cmd.PublishTrack, room_sid=room.sid, participant_sid=participant, name=args[2][0], kind=args[2][1]
            )
        elif kind == "toggle" and track is not None:
            self.execute(
                cmd.SetTrackEnabled,
                room_sid=room.sid,
                participant_sid=track.participant_sid,
                track_sid=track.sid,
                enabled=args[2],
            )
        elif kind == "unpublish" and track is not None:
            self.execute(
                cmd.UnpublishTrack, room_sid=room.sid, participant_sid=track.participant_sid, track_sid=track.sid
            )
        elif kind == "rules":
            self.execute(cmd.UpdateSubscribeRules, room_sid=room.sid, participant_sid=participant, rules=args[2])
        elif kind == "anonymize":
            self.execute(cmd.AnonymizeParticipant, room_sid=room.sid, participant_sid=participant)
        elif kind == "recording_rules":
            self.execute(cmd.UpdateRecordingRules, room_sid=room.sid, rules=args[1])
        elif kind == "recording_report" and room.recordings:
            recording = sorted(room.recordings)[args[1] % len(room.recordings)]
            report = {
                "start": cmd.ReportRecordingStarted,
                "complete": cmd.ReportRecordingCompleted,
                "fail": cmd.ReportRecordingFailed,
            }[args[2]]
            self.execute(report, room_sid=room.sid, recording_sid=recording)
        elif kind == "complete":
            self.execute(cmd.CompleteRoom, room_sid=room.sid)

    def check(self) -> None:
        tables = self.view.tables
        for room in self.rooms():
            sid = room.sid
            assert tables["rooms"][(sid,)]["status"] == ("in-progress" if room.in_progress else "completed")
            assert {
                r["sid"]: r["identity"]
                for r in tables["participants"].values()
                if r["room_sid"] == sid and r["status"] == "connected"
            } == {p.sid: p.identity for p in room.participants.values()}
            assert {
                r["sid"]: (r["participant_sid"], r["name"], r["kind"], r["enabled"])
                for r in tables["published_tracks"].values()
                if r["room_sid"] == sid
            } == {t.sid: (t.participant_sid, t.name, t.kind, t.state == "enabled") for t in room.tracks.values()}
            assert {
                (r["participant_sid"], r["sid"], r["publisher_sid"], r["enabled"])
                for r in tables["subscribed_tracks"].values()
                if r["room_sid"] == sid
            } == {
                (s, t, room.tracks[t].participant_sid, room.tracks[t].state == "enabled") for s, t in room.subscriptions
            }
            for p in room.participants.values():
                assert tables["subscribe_rules"][(p.sid,)]["rules"] == rules_json(p.rules)
            if room.settings.type in ("group", "group-small"):
                assert tables["recording_rules"][(sid,)]["rules"] == rules_json(room.recording_rules)
            assert {
                r["sid"]: (r["state"], r["source_sid"]) for r in tables["recordings"].values() if r["room_sid"] == sid
            } == {rec.sid: (rec.state, rec.track_sid) for rec in room.recordings.values()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_the_read_model_rebuilt_from_the_log_agrees_with_the_engine(ops):
    driver = Driver()
    driver.execute(cmd.CreateRoom, unique_name="standup", record_participants_on_connect=True)
    driver.execute(
        cmd.ConnectParticipant,
        room="standup",
        identity="alice",
        tracks=[cmd.TrackSpec(name="mic", kind="audio"), cmd.TrackSpec(name="cam", kind="video")],
    )
    driver.execute(
        cmd.ConnectParticipant, room="standup", identity="bob", tracks=[cmd.TrackSpec(name="mic", kind="audio")]
    )
    driver.check()
    for op in ops:
        driver.do(op)
        driver.check()
