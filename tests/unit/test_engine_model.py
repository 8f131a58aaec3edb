"""The engine against a simple reference model, driven by hypothesis.

The model below is written from the Twilio rules (reference §2, §3, §4.3, §8), not from the
domain code: plain dataclasses of rooms, participants and tracks, and a ten-line evaluation of
subscribe rules (client rules count in group rooms only; P2P media is direct, so everyone
receives everything). Every command's result (ok, or its error code) must be what the model
predicts, and after every step:

- the engine's rooms hold exactly the model's participants, tracks and subscriptions;
- no room has more participants than its cap; go rooms stay under the account cap;
- subscriptions equal `expected_subscriptions(room)`;
- replaying a room's log from scratch gives the engine's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain import commands as cmd
from domain.engine import Engine, RoomsApplication, project
from domain.handlers import expected_subscriptions
from domain.ids import CountingSidSource
from domain.results import CommandResult
from domain.settings import AccountPolicy

ACCOUNT_SID = "AC" + "1" * 32
GO_ACCOUNT_CAP = 2
CAPS = {"group": 50, "group-small": 4, "peer-to-peer": 10, "go": 2}
SFU = {"group", "group-small"}
TRACK_CAP = 170
IDENTITIES = ("alice", "bob", "carol")
NAMES = ("standup", "retro")
TRACK_SPECS = (("mic", "audio"), ("cam", "video"), ("chat", "data"), ("mic", "video"))
INCLUDE_ALL = [{"type": "include", "all": True}]
EXCLUDE_ALL = [{"type": "exclude", "all": True}]
RULE_SHAPES = (
    INCLUDE_ALL,
    EXCLUDE_ALL,
    [{"type": "include", "kind": "audio"}],
    [{"type": "include", "publisher": "bob"}],
    [{"type": "include", "all": True}, {"type": "exclude", "kind": "video"}],
    [{"type": "include", "track": "mic"}, {"type": "include", "publisher": "carol", "kind": "data"}],
    [{"type": "exclude", "publisher": "alice"}, {"type": "include", "kind": "video"}],
    [],  # invalid: 53215
)


# --- the reference model --------------------------------------------------------------------


@dataclass
class MTrack:
    sid: str
    owner: str
    name: str
    kind: str
    enabled: bool = True


@dataclass
class MParticipant:
    sid: str
    identity: str
    deadline: datetime
    rules: list[dict[str, Any]]


@dataclass
class MRoom:
    sid: str
    type: str
    cap: int
    name: str | None
    ad_hoc: bool
    audio_only: bool
    duration: int
    empty_timeout: int
    end_deadline: datetime
    unused_deadline: datetime | None
    empty_deadline: datetime | None = None
    live: bool = True
    participants: dict[str, MParticipant] = field(default_factory=dict)
    tracks: dict[str, MTrack] = field(default_factory=dict)
    seen_participants: list[str] = field(default_factory=list)
    seen_tracks: list[str] = field(default_factory=list)

    def by_identity(self, identity: str) -> MParticipant | None:
        return next((p for p in self.participants.values() if p.identity == identity), None)


def rule_selects(rule: dict[str, Any], track: MTrack, publisher: MParticipant) -> bool:
    if rule.get("all"):
        return True
    if "kind" in rule and rule["kind"] != track.kind:
        return False
    if "publisher" in rule and rule["publisher"] not in (publisher.sid, publisher.identity):
        return False
    return "track" not in rule or rule["track"] in (track.sid, track.name)


def model_subscriptions(room: MRoom) -> set[tuple[str, str]]:
    pairs = set()
    for subscriber in room.participants.values():
        chosen: set[str] = set()
        for r in subscriber.rules:
            hits = {
                t.sid
                for t in room.tracks.values()
                if t.owner != subscriber.sid and rule_selects(r, t, room.participants[t.owner])
            }
            chosen = chosen | hits if r["type"] == "include" else chosen - hits
        pairs |= {(subscriber.sid, t) for t in chosen}
    return pairs


class Model:
    def __init__(self) -> None:
        self.rooms: dict[str, MRoom] = {}
        self.names: dict[str, str] = {}

    def go_participants(self) -> set[str]:
        return {p for r in self.rooms.values() if r.live and r.type == "go" for p in r.participants}

    def drop(self, room: MRoom, participant_sid: str) -> None:
        for sid in [t.sid for t in room.tracks.values() if t.owner == participant_sid]:
            del room.tracks[sid]
        del room.participants[participant_sid]

    def leave(self, room: MRoom, participant_sid: str, now: datetime) -> None:
        self.drop(room, participant_sid)
        if not room.participants:
            if room.ad_hoc:
                self.end(room)
            else:
                room.empty_deadline = now + timedelta(minutes=room.empty_timeout)

    def end(self, room: MRoom) -> None:
        room.participants.clear()
        room.tracks.clear()
        room.live = False
        room.unused_deadline = room.empty_deadline = None
        if room.name is not None and self.names.get(room.name) == room.sid:
            del self.names[room.name]

    def expire(self, room: MRoom, now: datetime) -> None:
        if not room.live:
            return
        deadlines = [d for d in (room.end_deadline, room.unused_deadline, room.empty_deadline) if d is not None]
        if any(d <= now for d in deadlines):
            self.end(room)
        else:
            for p in [p for p in room.participants.values() if p.deadline <= now]:
                if room.live:
                    self.leave(room, p.sid, now)

    def check_tracks(
        self, room: MRoom | None, specs: list[tuple[str, str]], owner: str | None, freed: int = 0
    ) -> int | None:
        names = [n for n, _ in specs]
        if owner is not None and room is not None:
            names += [t.name for t in room.tracks.values() if t.owner == owner]
        if len(set(names)) != len(names):
            return 53304
        if room is not None and room.audio_only and any(k == "video" for _, k in specs):
            return 53125
        if room is not None and room.type in SFU and len(room.tracks) - freed + len(specs) > TRACK_CAP:
            return 53203
        return None


# --- the machine ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.app = RoomsApplication(env={"PERSISTENCE_MODULE": "adapters.store.memory:Factory"})
        policy = AccountPolicy(account_sid=ACCOUNT_SID, max_go_participants=GO_ACCOUNT_CAP)
        self.engine = Engine(self.app, policy=policy, sids=CountingSidSource(), clock=self.clock)
        self.model = Model()
        self.count = 0
        self.touched: set[str] = set()
        self.owner_of: dict[str, str] = {}

    # --- helpers ---------------------------------------------------------------------------

    def run(self, command_type: type[cmd.Command], expected: int | None, **fields: Any) -> CommandResult:
        self.count += 1
        result = self.engine.execute(command_type(command_id=f"c{self.count}", **fields))
        assert result.error_code == expected, f"{command_type.__name__}{fields}: {result}, model expected {expected}"
        assert result.ok == (expected is None)
        return result

    def pick_room(self, data: st.DataObject, need: str = "") -> MRoom:
        """Mostly a live room that has what the rule `need`s (participants, tracks), sometimes any room."""
        fit = sorted(sid for sid, r in self.model.rooms.items() if r.live and (not need or getattr(r, need)))
        usual = data.draw(st.integers(0, 9), label="usual") < 8
        sid = data.draw(st.sampled_from(fit if fit and usual else sorted(self.model.rooms)), label="room")
        self.touched.add(sid)
        return self.model.rooms[sid]

    def has(self, need: str) -> bool:
        return any(r.live and (need == "live" or getattr(r, need)) for r in self.model.rooms.values())

    def pick_participant(self, data: st.DataObject, room: MRoom) -> str:
        """Mostly a connected participant (by SID or identity), sometimes one gone or unknown."""
        connected = [*room.participants, *(p.identity for p in room.participants.values())]
        usual = data.draw(st.integers(0, 9), label="usual") < 8
        choices = connected if connected and usual else [*room.seen_participants, *IDENTITIES, "PA" + "f" * 32]
        return data.draw(st.sampled_from(choices), label="participant")

    def resolve(self, room: MRoom, participant: str) -> MParticipant | None:
        return room.participants.get(participant) or room.by_identity(participant)

    def pick_track(self, data: st.DataObject, room: MRoom) -> tuple[str, str]:
        """(participant, track SID): usually the track's owner, sometimes anyone seen."""
        usual = data.draw(st.integers(0, 9), label="usual") < 8
        live = sorted(room.tracks)
        choices = live if live and usual else [*room.seen_tracks, "MT" + "f" * 32]
        track = data.draw(st.sampled_from(choices), label="track")
        owner = self.owner_of.get(track)
        if owner is None or data.draw(st.integers(0, 9), label="someone else") == 0:
            return self.pick_participant(data, room), track
        return owner, track

    def live_participant(self, room: MRoom, participant: str) -> tuple[int | None, MParticipant | None]:
        if not room.live:
            return 53118, None
        found = self.resolve(room, participant)
        return (None, found) if found is not None else (53204, None)

    @initialize(types=st.lists(st.sampled_from(("group", "group-small", "peer-to-peer", "go", "go")), max_size=4))
    def given_rooms(self, types) -> None:
        """Start with a few unnamed rooms that wait an hour for their first participant."""
        for room_type in types:
            self.create_room(None, room_type, None, False, None, 60, None)

    # --- rooms -----------------------------------------------------------------------------

    @rule(
        name=st.sampled_from((None, *NAMES)),
        room_type=st.sampled_from(tuple(CAPS)),
        max_participants=st.sampled_from((None, None, 1, 2, 3, 0, 5, 51)),
        audio_only=st.sampled_from((False, False, False, True)),
        empty=st.sampled_from((None, 1)),
        unused=st.sampled_from((None, 1, 60)),
        duration=st.sampled_from((None, 600)),
    )
    def create_room(self, name, room_type, max_participants, audio_only, empty, unused, duration) -> None:
        cap = CAPS[room_type] if max_participants is None else max_participants
        expected = None
        if not 1 <= cap <= CAPS[room_type]:
            expected = 53107
        elif audio_only and room_type != "group":
            expected = 53124
        elif name is not None and name in self.model.names:
            expected = 53113
        result = self.run(
            cmd.CreateRoom,
            expected,
            unique_name=name,
            type=room_type,
            max_participants=max_participants,
            audio_only=audio_only,
            empty_room_timeout=empty,
            unused_room_timeout=unused,
            max_participant_duration=duration,
        )
        if expected is None:
            now = self.clock.now
            sid = result.room_sid
            assert sid is not None
            self.model.rooms[sid] = MRoom(
                sid=sid,
                type=room_type,
                cap=cap,
                name=name,
                ad_hoc=False,
                audio_only=audio_only,
                duration=duration or 4 * 3600,
                empty_timeout=empty or 5,
                end_deadline=now + timedelta(hours=24),
                unused_deadline=now + timedelta(minutes=unused or 5),
            )
            if name is not None:
                self.model.names[name] = sid
            self.touched.add(sid)

    @precondition(lambda self: self.has("live"))
    @rule(data=st.data())
    def complete_room(self, data) -> None:
        room = self.pick_room(data)
        self.run(cmd.CompleteRoom, None if room.live else 53112, room_sid=room.sid)
        if room.live:
            self.model.end(room)

    @precondition(lambda self: self.model.rooms)
    @rule(minutes=st.sampled_from((1, 1, 2, 2, 3, 5, 6, 11, 61, 240, 1440)))
    def advance_clock_and_expire_deadlines(self, minutes) -> None:
        self.clock.now += timedelta(minutes=minutes)
        for sid in sorted(self.model.rooms):
            self.run(cmd.ExpireDeadlines, None, room_sid=sid)
            self.model.expire(self.model.rooms[sid], self.clock.now)
            self.touched.add(sid)

    # --- participants ------------------------------------------------------------------------

    @rule(
        data=st.data(),
        identity=st.sampled_from(IDENTITIES),
        specs=st.lists(st.sampled_from(TRACK_SPECS), max_size=2),
        rules=st.sampled_from((None, *RULE_SHAPES)),
        automatic=st.booleans(),
    )
    def connect(self, data, identity, specs, rules, automatic) -> None:
        live = [sid for sid, r in sorted(self.model.rooms.items()) if r.live]
        how = data.draw(st.integers(0, 9), label="how")
        choices = live if live and how < 6 else NAMES if how < 8 else [*sorted(self.model.rooms), *NAMES]
        target = data.draw(st.sampled_from(choices), label="target")
        room = self.model.rooms.get(target) or self.model.rooms.get(self.model.names.get(target, ""))
        newcomers = [i for i in IDENTITIES if room is None or room.by_identity(i) is None]
        if newcomers and data.draw(st.integers(0, 9), label="newcomer") < 7:
            identity = data.draw(st.sampled_from(newcomers), label="identity")
        replaced = room.by_identity(identity) if room is not None else None
        freed = sum(1 for t in room.tracks.values() if replaced and t.owner == replaced.sid) if room else 0
        expected = None
        if rules == []:
            expected = 53215
        elif room is not None and not room.live:
            expected = 53118
        elif (code := self.model.check_tracks(room, specs, None, freed)) is not None:
            expected = code
        elif (
            room is not None
            and room.type == "go"
            and replaced is None
            and len(self.model.go_participants()) >= GO_ACCOUNT_CAP
        ):
            expected = 53206
        elif room is not None and replaced is None and len(room.participants) >= room.cap:
            expected = 53105
        tracks = [cmd.TrackSpec(name=n, kind=k) for n, k in specs]  # type: ignore[arg-type]
        result = self.run(
            cmd.ConnectParticipant,
            expected,
            room=target,
            identity=identity,
            tracks=tracks,
            subscribe_rules=rules,
            automatic_subscription=automatic,
        )
        if expected is not None:
            return
        now = self.clock.now
        if room is None:
            assert result.room_sid is not None
            room = self.model.rooms[result.room_sid] = MRoom(
                sid=result.room_sid,
                type="group",
                cap=CAPS["group"],
                name=target,
                ad_hoc=True,
                audio_only=False,
                duration=4 * 3600,
                empty_timeout=0,
                end_deadline=now + timedelta(hours=24),
                unused_deadline=None,
            )
            self.model.names[target] = room.sid
        assert result.room_sid == room.sid
        self.touched.add(room.sid)
        assert result.replaced_participant_sid == (replaced.sid if replaced else None)
        if replaced is not None:
            self.model.drop(room, replaced.sid)
        sid = result.participant_sid
        assert sid is not None
        chosen = rules if rules is not None else (INCLUDE_ALL if automatic else EXCLUDE_ALL)
        if room.type not in SFU:  # direct media: client rules have no effect
            chosen = INCLUDE_ALL
        room.participants[sid] = MParticipant(sid, identity, now + timedelta(seconds=room.duration), chosen)
        room.seen_participants.append(sid)
        room.unused_deadline = room.empty_deadline = None
        assert len(result.track_sids) == len(specs)
        for track_sid, (name, kind) in zip(result.track_sids, specs, strict=True):
            self.add_track(room, sid, track_sid, name, kind)

    def add_track(self, room: MRoom, owner: str, sid: str, name: str, kind: str) -> None:
        room.tracks[sid] = MTrack(sid, owner, name, kind)
        room.seen_tracks.append(sid)
        self.owner_of[sid] = owner

    @precondition(lambda self: self.has("participants"))
    @rule(data=st.data(), kick=st.booleans())
    def disconnect(self, data, kick) -> None:
        room = self.pick_room(data, "participants")
        participant = self.pick_participant(data, room)
        found = self.resolve(room, participant)
        self.run(
            cmd.DisconnectParticipant,
            None if found else 53204,
            room_sid=room.sid,
            participant_sid=participant,
            reason="kicked" if kick else "left",
        )
        if found is not None:
            self.model.leave(room, found.sid, self.clock.now)

    # --- tracks ------------------------------------------------------------------------------

    @precondition(lambda self: self.has("participants"))
    @rule(data=st.data(), spec=st.sampled_from(TRACK_SPECS))
    def publish(self, data, spec) -> None:
        room = self.pick_room(data, "participants")
        participant = self.pick_participant(data, room)
        expected, found = self.live_participant(room, participant)
        if found is not None:
            expected = self.model.check_tracks(room, [spec], found.sid)
        result = self.run(
            cmd.PublishTrack, expected, room_sid=room.sid, participant_sid=participant, name=spec[0], kind=spec[1]
        )
        if expected is None:
            assert found is not None and result.track_sid is not None
            self.add_track(room, found.sid, result.track_sid, *spec)

    @precondition(lambda self: self.has("tracks"))
    @rule(data=st.data(), enabled=st.booleans())
    def set_track_enabled(self, data, enabled) -> None:
        room = self.pick_room(data, "tracks")
        participant, track = self.pick_track(data, room)
        expected, found = self.live_participant(room, participant)
        if found is not None and (track not in room.tracks or room.tracks[track].owner != found.sid):
            expected = 20404
        self.run(
            cmd.SetTrackEnabled,
            expected,
            room_sid=room.sid,
            participant_sid=participant,
            track_sid=track,
            enabled=enabled,
        )
        if expected is None:
            room.tracks[track].enabled = enabled

    @precondition(lambda self: self.has("tracks"))
    @rule(data=st.data())
    def unpublish(self, data) -> None:
        room = self.pick_room(data, "tracks")
        participant, track = self.pick_track(data, room)
        expected, found = self.live_participant(room, participant)
        if found is not None and (track not in room.tracks or room.tracks[track].owner != found.sid):
            expected = 20404
        self.run(cmd.UnpublishTrack, expected, room_sid=room.sid, participant_sid=participant, track_sid=track)
        if expected is None:
            del room.tracks[track]

    # --- subscriptions -----------------------------------------------------------------------

    @precondition(lambda self: self.has("participants"))
    @rule(data=st.data(), rules=st.sampled_from(RULE_SHAPES), by_sid=st.booleans())
    def update_subscribe_rules(self, data, rules, by_sid) -> None:
        room = self.pick_room(data, "participants")
        participant = self.pick_participant(data, room)
        if by_sid and room.seen_participants:
            publisher = data.draw(st.sampled_from(room.seen_participants), label="publisher sid")
            rules = [{"type": "include", "publisher": publisher}]
        expected = None if room.live else 53118
        if expected is None and room.type not in SFU:
            expected = 53117
        found = self.resolve(room, participant)
        if expected is None and found is None:
            expected = 53204
        if expected is None and rules == []:
            expected = 53215
        self.run(cmd.UpdateSubscribeRules, expected, room_sid=room.sid, participant_sid=participant, rules=rules)
        if expected is None:
            assert found is not None
            found.rules = rules

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def engine_state_matches_the_model(self) -> None:
        cached = {r.sid: r for r in self.engine.cached_rooms()}
        assert set(cached) == set(self.model.rooms)
        for sid, expected in self.model.rooms.items():
            actual = cached[sid]
            assert actual.in_progress == expected.live
            assert {p.sid: p.identity for p in actual.participants.values()} == {
                p.sid: p.identity for p in expected.participants.values()
            }
            assert len(actual.participants) <= actual.settings.max_participants == expected.cap
            assert {
                (t.sid, t.participant_sid, t.name, t.kind, t.state == "enabled") for t in actual.tracks.values()
            } == {(t.sid, t.owner, t.name, t.kind, t.enabled) for t in expected.tracks.values()}
            assert actual.subscriptions == model_subscriptions(expected)
            assert actual.subscriptions == expected_subscriptions(actual)

    @invariant()
    def go_rooms_stay_under_the_account_cap(self) -> None:
        account = project(None, self.stored(f"account:{ACCOUNT_SID}"))
        admitted = account.go_participants if account is not None else set()
        assert admitted == self.model.go_participants()
        assert len(admitted) <= GO_ACCOUNT_CAP

    @invariant()
    def replaying_the_log_reproduces_the_engines_state(self) -> None:
        cached = {r.sid: r for r in self.engine.cached_rooms()}
        for sid in sorted(self.touched):
            replayed = project(None, self.stored(sid))
            assert msgspec.structs.asdict(replayed) == msgspec.structs.asdict(cached[sid])
        self.touched.clear()

    def stored(self, aggregate_id: str) -> list[Any]:
        return [self.app.mapper.to_domain_event(s) for s in self.app.recorder.select_events(aggregate_id)]


EngineMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestEngineAgainstModel = EngineMachine.TestCase
