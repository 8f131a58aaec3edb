"""Status callbacks end to end: a real engine on a real store, the webhooks component, and a
local webhook receiver (aiohttp on a free port) that checks every `X-Twilio-Signature` with the
twilio helper library's RequestValidator, as an app behind Twilio would.

What a test compares is what the receiver saw: which callbacks, in which order per room, how
often. Retries run on a fake clock the test moves; nothing sleeps to synchronise: tests wait
for requests at the receiver or for attempt outcomes (the component's `observe` hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from twilio.request_validator import RequestValidator

from adapters.clock import FakeClock
from adapters.store.sql import Database
from adapters.store.url import parse_store_url
from adapters.webhooks import Delivery, Webhooks, WebhookSettings, build_webhooks
from adapters.webhooks.follower import CallbackFollower
from adapters.webhooks.outbox import Outbox
from domain import commands as cmd
from domain.engine import Engine

AUTH_TOKEN = "f" * 32
TIMEOUT = 15.0
"""How long a test waits for a request or an outcome (never reached when things work)."""
RETRY_WAIT = timedelta(seconds=61)
"""More than the longest backoff (60 s): moving the fake clock by this makes any retry due."""
SNAPSHOT_INTERVAL = 4
"""Rooms are snapshotted often, so a follower that loads a room reads a snapshot, then events."""
_ids = itertools.count(1)

MIC = cmd.TrackSpec(name="mic", kind="audio")
CAM = cmd.TrackSpec(name="cam", kind="video")


# --- the receiver -------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    valid: bool
    status: int | None = None
    """The status answered; None while the request is held."""

    @property
    def event(self) -> str:
        return self.params["StatusCallbackEvent"]

    @property
    def token(self) -> str:
        return self.headers["I-Twilio-Idempotency-Token"]


@dataclass
class Receiver:
    """An app's webhook endpoint. Per path, `answers` lists statuses for the next requests (then
    200), `answer` decides by the request, and a `gate` holds requests until it is set."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    answer: dict[str, Callable[[Received], int]] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for gate in self.gates.values():
            gate.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        validator = RequestValidator(AUTH_TOKEN)
        signature = request.headers.get("X-Twilio-Signature", "")
        if request.method == "POST":
            form = dict((await request.post()).items())
            params = {k: str(v) for k, v in form.items()}
            valid = validator.validate(str(request.url), params, signature)
        else:
            params = dict(request.query)
            valid = validator.validate(str(request.url), {}, signature)
        seen = Received(request.path, request.method, str(request.url), params, dict(request.headers), body, valid)
        await self._record(seen)
        gate = self.gates.get(request.path)
        if gate is not None:
            await gate.wait()
        queued = self.answers.get(request.path)
        if queued:
            status = queued.pop(0)
        elif request.path in self.answer:
            status = self.answer[request.path](seen)
        else:
            status = 200
        seen.status = status
        await self._record(None)
        return web.Response(status=status, text="ok")

    async def _record(self, seen: Received | None) -> None:
        async with self.changed:
            if seen is not None:
                self.requests.append(seen)
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            async with self.changed:
                await self.changed.wait_for(predicate)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def events(self, path: str) -> list[str]:
        """The events that arrived at `path` with a 2xx, once each (first copy), in arrival order."""
        seen: set[str] = set()
        out = []
        for r in self.at(path):
            if r.status is not None and 200 <= r.status < 300 and r.token not in seen:
                seen.add(r.token)
                out.append(r.event)
        return out


# --- the harness ---------------------------------------------------------------------------------


class Outcomes:
    """The component's `observe` hook: every attempt's outcome, waitable."""

    def __init__(self) -> None:
        self.seen: list[Delivery] = []
        self.changed = asyncio.Event()

    def __call__(self, delivery: Delivery) -> None:
        self.seen.append(delivery)
        self.changed.set()

    def count(self, outcome: str) -> int:
        return sum(1 for d in self.seen if d.outcome == outcome)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Harness:
    engine: Engine
    db: Database
    receiver: Receiver
    clock: FakeClock = field(default_factory=FakeClock)
    outcomes: Outcomes = field(default_factory=Outcomes)
    running: dict[Webhooks, asyncio.Task[None]] = field(default_factory=dict)

    def component(self, db: Database | None = None, engine: Engine | None = None, **settings: Any) -> Webhooks:
        settings.setdefault("poll_seconds", 0.2)
        return build_webhooks(
            (engine or self.engine).app,
            db or self.db,
            auth_token=AUTH_TOKEN,
            clock=self.clock,
            settings=WebhookSettings(**settings),
            observe=self.outcomes,
            rng=random.Random(7),
        )

    def start(self, webhooks: Webhooks) -> Webhooks:
        self.running[webhooks] = asyncio.create_task(webhooks.run())
        return webhooks

    async def stop(self, webhooks: Webhooks) -> None:
        task = self.running.pop(webhooks)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(webhooks.close)

    async def execute(self, command_type: type[cmd.Command], **fields: Any) -> Any:
        fields.setdefault("command_id", f"webhooks-test-{next(_ids)}")
        result = await asyncio.to_thread(self.engine.execute, command_type(**fields))
        assert result.ok, result
        for webhooks in self.running:
            webhooks.wake()  # what the command bus's after-batch hook does
        return result

    async def room(self, path: str | None, **fields: Any) -> str:
        if path is not None:
            fields["status_callback"] = self.receiver.url(path)
        return str((await self.execute(cmd.CreateRoom, **fields)).room_sid)

    async def join(self, room: str, identity: str, *tracks: cmd.TrackSpec) -> Any:
        return await self.execute(cmd.ConnectParticipant, room=room, identity=identity, tracks=list(tracks))


async def open_harness(url: str, open_engine: Callable[..., Engine]) -> Harness:
    """An engine on the store at `url`, the read-model database beside it, a running receiver."""
    db = Database.from_url(parse_store_url(url).read_model_url())
    receiver = Receiver()
    await receiver.start()
    return Harness(open_engine(url, snapshot_interval=SNAPSHOT_INTERVAL), db, receiver)


@pytest_asyncio.fixture
async def sqlite_harness(sqlite_store_url: str, open_engine: Callable[..., Engine]) -> AsyncIterator[Harness]:
    harness = await open_harness(sqlite_store_url, open_engine)
    try:
        yield harness
    finally:
        await close_harness(harness)


async def close_harness(harness: Harness) -> None:
    for webhooks in list(harness.running):
        await harness.stop(webhooks)
    await harness.receiver.stop()
    harness.db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_store_url" if request.param == "sqlite" else "postgres_store_url"
    return str(request.getfixturevalue(fixture))


@pytest_asyncio.fixture
async def harness(store_url: str, open_engine: Callable[..., Engine]) -> AsyncIterator[Harness]:
    made = await open_harness(store_url, open_engine)
    try:
        yield made
    finally:
        await close_harness(made)


def assert_in_order(requests: list[Received]) -> None:
    """Per room, SequenceNumbers never go back (a resent callback repeats, nothing overtakes)."""
    by_room: dict[str, list[int]] = {}
    for r in requests:
        by_room.setdefault(r.params["RoomSid"], []).append(int(r.params["SequenceNumber"]))
    for room, numbers in by_room.items():
        assert numbers == sorted(numbers), f"{room} out of order: {numbers}"
        assert sorted(set(numbers)) == list(range(len(set(numbers)))), f"{room} has gaps: {numbers}"


LIFE = [
    "room-created",
    "participant-connected",  # alice, with her mic and cam
    "track-added",
    "track-added",
    "participant-connected",  # bob
    "track-disabled",
    "track-enabled",
    "track-removed",  # alice unpublishes her mic
    "participant-disconnected",  # bob leaves
    "track-removed",  # the room ends: alice's cam, then alice
    "participant-disconnected",
    "room-ended",
]


async def a_rooms_life(h: Harness, path: str, name: str) -> str:
    """The commands behind LIFE."""
    room = await h.room(path, unique_name=name)
    alice = await h.join(room, "alice", MIC, CAM)
    bob = await h.join(room, "bob")
    mic, cam = alice.track_sids
    for enabled in (False, True):
        await h.execute(
            cmd.SetTrackEnabled, room_sid=room, participant_sid=alice.participant_sid, track_sid=cam, enabled=enabled
        )
    await h.execute(cmd.UnpublishTrack, room_sid=room, participant_sid=alice.participant_sid, track_sid=mic)
    await h.execute(cmd.DisconnectParticipant, room_sid=room, participant_sid=bob.participant_sid)
    await h.execute(cmd.CompleteRoom, room_sid=room)
    return room


# --- a room's life ---------------------------------------------------------------------------------


async def test_a_rooms_life_arrives_as_signed_callbacks_in_order(harness: Harness):
    h = harness
    h.start(h.component())
    standup = await a_rooms_life(h, "/standup", "standup")
    retro = await h.room("/retro", unique_name="retro")
    await h.join(retro, "carol", MIC)
    silent = await h.room(None, unique_name="no-callback")
    await h.join(silent, "dave", MIC)

    await h.receiver.wait_for(lambda: len(h.receiver.events("/standup")) == len(LIFE))
    await h.receiver.wait_for(lambda: len(h.receiver.events("/retro")) == 3)

    assert h.receiver.events("/standup") == LIFE
    assert h.receiver.events("/retro") == ["room-created", "participant-connected", "track-added"]
    assert all(r.valid for r in h.receiver.requests), [r.url for r in h.receiver.requests if not r.valid]
    assert len(h.receiver.requests) == len(LIFE) + 3  # each once; nothing from the room without callback
    calls = h.receiver.at("/standup")
    assert [r.params["SequenceNumber"] for r in calls] == [str(n) for n in range(len(LIFE))]
    assert {r.params["RoomSid"] for r in calls} == {standup}
    assert {r.params["RoomName"] for r in calls} == {"standup"}
    assert [r.params.get("ParticipantIdentity") for r in calls] == [
        None, "alice", "alice", "alice", "bob", "alice", "alice", "alice", "bob", "alice", "alice", None,
    ]  # fmt: skip
    assert calls[-1].params["RoomStatus"] == "completed"
    assert {r.method for r in h.receiver.requests} == {"POST"}
    assert {r.headers["Content-Type"] for r in h.receiver.requests} == {"application/x-www-form-urlencoded"}
    assert {r.headers["User-Agent"] for r in h.receiver.requests} == {"TwilioProxy/1.1"}
    assert len({r.token for r in h.receiver.requests}) == len(h.receiver.requests)


async def test_get_callbacks_carry_the_params_in_the_query_string(sqlite_harness: Harness):
    h = sqlite_harness
    h.start(h.component())
    room = await h.room("/get?tenant=acme", status_callback_method="GET")
    await h.join(room, "alice", MIC)
    await h.execute(cmd.CompleteRoom, room_sid=room)

    await h.receiver.wait_for(lambda: len(h.receiver.events("/get")) == 6)

    calls = h.receiver.at("/get")
    assert [r.event for r in calls] == [
        "room-created",
        "participant-connected",
        "track-added",
        "track-removed",
        "participant-disconnected",
        "room-ended",
    ]
    assert {r.method for r in calls} == {"GET"}
    assert all(r.valid for r in calls)
    assert {r.body for r in calls} == {b""}
    assert {r.params["tenant"] for r in calls} == {"acme"}
    assert calls[0].params["RoomSid"] == room


# --- failures and retries -----------------------------------------------------------------------------


async def test_a_receiver_answering_503_for_a_while_gets_every_callback_in_order(sqlite_harness: Harness):
    h = sqlite_harness
    h.receiver.answers["/flaky"] = [503, 503, 503]
    h.start(h.component())
    room = await h.room("/flaky")
    await h.join(room, "alice", MIC, CAM)

    for failures in (1, 2, 3):
        await h.outcomes.wait_for(lambda n=failures: h.outcomes.count("retrying") == n)
        assert len(h.receiver.at("/flaky")) == failures  # nothing sent before the backoff passed
        h.clock.advance(RETRY_WAIT)
    await h.outcomes.wait_for(lambda: h.outcomes.count("delivered") == 4)

    calls = h.receiver.at("/flaky")
    assert [(r.event, r.status) for r in calls] == [
        ("room-created", 503),
        ("room-created", 503),
        ("room-created", 503),
        ("room-created", 200),
        ("participant-connected", 200),
        ("track-added", 200),
        ("track-added", 200),
    ]
    assert len({r.token for r in calls[:4]}) == 1  # one callback, retried: one idempotency token
    assert all(r.valid for r in calls)


async def test_a_receiver_not_listening_at_first_gets_every_callback_once_it_listens(sqlite_harness: Harness):
    h = sqlite_harness
    with socket.socket() as probe:  # a port nothing listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late = Receiver(port=port)
    h.start(h.component())
    room = await h.execute(cmd.CreateRoom, status_callback=f"http://127.0.0.1:{port}/late")
    await h.join(str(room.room_sid), "alice", MIC)

    await h.outcomes.wait_for(lambda: h.outcomes.count("retrying") == 1)
    h.clock.advance(RETRY_WAIT)
    await h.outcomes.wait_for(lambda: h.outcomes.count("retrying") == 2)
    await late.start()
    try:
        h.clock.advance(RETRY_WAIT)
        await late.wait_for(lambda: len(late.events("/late")) == 3)
        assert late.events("/late") == ["room-created", "participant-connected", "track-added"]
        assert all(r.valid for r in late.requests)
        assert {d.error.split(":")[0] for d in h.outcomes.seen if d.outcome == "retrying"} == {"ClientConnectorError"}
    finally:
        await late.stop()


async def test_a_dead_endpoint_for_one_room_does_not_delay_another(sqlite_harness: Harness):
    h = sqlite_harness
    h.receiver.gates["/dead"] = asyncio.Event()  # holds every request until the test lets go
    h.start(h.component())
    stuck = await h.room("/dead")
    await h.join(stuck, "alice", MIC)
    other = await h.room("/alive")
    await h.join(other, "bob", MIC)
    await h.execute(cmd.CompleteRoom, room_sid=other)

    await h.receiver.wait_for(lambda: len(h.receiver.events("/alive")) == 6)

    assert h.receiver.events("/alive") == [
        "room-created",
        "participant-connected",
        "track-added",
        "track-removed",
        "participant-disconnected",
        "room-ended",
    ]
    assert [r.event for r in h.receiver.at("/dead")] == ["room-created"]  # its next ones wait their turn
    h.receiver.gates["/dead"].set()
    await h.receiver.wait_for(lambda: len(h.receiver.events("/dead")) == 3)
    assert h.receiver.events("/dead") == ["room-created", "participant-connected", "track-added"]


async def test_a_callback_failing_past_the_give_up_time_is_dropped_and_logged_and_later_ones_flow(
    sqlite_harness: Harness, caplog: pytest.LogCaptureFixture
):
    h = sqlite_harness
    h.receiver.answer["/picky"] = lambda r: 500 if r.event == "room-created" else 200
    h.start(h.component(give_up_after=300))
    room = await h.room("/picky")
    await h.join(room, "alice")

    with caplog.at_level(logging.WARNING, logger="adapters.webhooks.delivery"):
        for attempt in itertools.count(1):
            await h.outcomes.wait_for(lambda n=attempt: len(h.outcomes.seen) == n)
            if h.outcomes.seen[-1].outcome == "given-up":
                break
            assert attempt < 20, "never given up"
            h.clock.advance(RETRY_WAIT)
        await h.receiver.wait_for(lambda: h.receiver.events("/picky") == ["participant-connected"])

    given_up = [d for d in h.outcomes.seen if d.outcome == "given-up"]
    assert [(d.event, d.room_sid) for d in given_up] == [("room-created", room)]
    assert 5 <= given_up[0].attempts <= 7  # one a minute at most, for five minutes
    assert any(room in r.getMessage() and "gave up" in r.getMessage() for r in caplog.records)
    assert h.receiver.at("/picky")[-1].params["SequenceNumber"] == "1"


# --- restarts and several processes -----------------------------------------------------------------


async def test_a_restarted_component_delivers_the_rest_and_nothing_acknowledged_twice(sqlite_harness: Harness):
    h = sqlite_harness
    first = h.start(h.component())
    room = await h.room("/r")
    await h.join(room, "alice", MIC, CAM)
    await h.outcomes.wait_for(lambda: h.outcomes.count("delivered") == 4)
    h.receiver.gates["/r"] = asyncio.Event()  # the next request hangs: in flight when we stop
    bob = await h.join(room, "bob", MIC)
    await h.receiver.wait_for(lambda: len(h.receiver.at("/r")) == 5)

    await h.stop(first)
    acknowledged = {r.token for r in h.receiver.at("/r")[:4]}
    await h.execute(cmd.DisconnectParticipant, room_sid=room, participant_sid=bob.participant_sid)
    await h.execute(cmd.CompleteRoom, room_sid=room)  # committed while no component runs
    assert Outbox(h.db).pending() == 2  # bob's join and track; the rest is not followed yet
    h.receiver.gates.pop("/r").set()  # the held request is answered, to a client long gone
    h.start(h.component())

    expected = [
        "room-created",
        "participant-connected",
        "track-added",
        "track-added",
        "participant-connected",
        "track-added",
        "track-removed",
        "participant-disconnected",
        "track-removed",
        "track-removed",
        "participant-disconnected",
        "room-ended",
    ]
    await h.receiver.wait_for(lambda: len(h.receiver.events("/r")) == len(expected))
    assert h.receiver.events("/r") == expected
    calls = h.receiver.at("/r")
    assert all(sum(1 for r in calls if r.token == token) == 1 for token in acknowledged)
    assert len(calls) <= len(expected) + 1  # at most the one in flight at the stop, twice
    assert_in_order(calls)
    assert all(r.valid for r in calls)
    await h.outcomes.wait_for(lambda: h.outcomes.count("delivered") == len(expected))
    assert Outbox(h.db).pending() == 0


@pytest.mark.postgres
async def test_two_processes_on_one_postgres_deliver_each_callback_once_in_order(
    postgres_store_url: str, open_engine: Callable[..., Engine]
):
    h = await open_harness(postgres_store_url, open_engine)
    other_db = Database.from_url(parse_store_url(postgres_store_url).read_model_url())
    try:
        mine = h.start(h.component())
        theirs = h.start(h.component(db=other_db, engine=open_engine(postgres_store_url)))
        rooms = []
        for n in range(6):
            room = await h.room(f"/room{n}")
            alice = await h.join(room, "alice", MIC, CAM)
            await h.join(room, "bob", MIC)
            await h.execute(cmd.DisconnectParticipant, room_sid=room, participant_sid=alice.participant_sid)
            await h.execute(cmd.CompleteRoom, room_sid=room)
            rooms.append(room)
        expected = [
            "room-created",
            "participant-connected",
            "track-added",
            "track-added",
            "participant-connected",
            "track-added",
            "track-removed",
            "track-removed",
            "participant-disconnected",
            "track-removed",
            "participant-disconnected",
            "room-ended",
        ]
        for n in range(6):
            await h.receiver.wait_for(lambda n=n: len(h.receiver.events(f"/room{n}")) == len(expected))
            assert h.receiver.events(f"/room{n}") == expected

        assert len(h.receiver.requests) == 6 * len(expected)  # none twice
        assert_in_order(h.receiver.requests)
        assert all(r.valid for r in h.receiver.requests)
        assert mine.follower.appended + theirs.follower.appended == 6 * len(expected)
    finally:
        await close_harness(h)
        other_db.close()


# --- the follower ----------------------------------------------------------------------------------


def test_a_follower_that_loses_the_race_writes_nothing_and_goes_on_from_the_winners_position(
    sqlite_store_url: str, open_engine: Callable[..., Engine]
):
    engine = open_engine(sqlite_store_url, snapshot_interval=SNAPSHOT_INTERVAL)
    db = Database.from_url(parse_store_url(sqlite_store_url).read_model_url())
    try:
        outbox = Outbox(db)
        outbox.create_tables(0)
        clock = FakeClock()
        winner = CallbackFollower(engine.app, outbox, clock.now)
        loser = CallbackFollower(open_engine(sqlite_store_url).app, Outbox(db), clock.now)

        def run(command_type: type[cmd.Command], **fields: Any) -> Any:
            result = engine.execute(command_type(command_id=f"webhooks-test-{next(_ids)}", **fields))
            assert result.ok, result
            return result

        room = str(run(cmd.CreateRoom, status_callback="https://hooks.example.com/a").room_sid)
        run(cmd.ConnectParticipant, room=room, identity="alice", tracks=[MIC])
        loser.catch_up()  # it knows the room from here on
        run(cmd.ConnectParticipant, room=room, identity="bob", tracks=[CAM])
        append = loser.outbox.append

        def racing(*args: Any) -> bool:
            winner.catch_up()  # gets there first: loads the room from the store, writes bob's two
            loser.outbox.append = append  # type: ignore[method-assign]
            return append(*args)

        loser.outbox.append = racing  # type: ignore[method-assign]
        loser.catch_up()
        run(cmd.CompleteRoom, room_sid=room)
        loser.catch_up()

        waiting = outbox.pending_rooms()[room]
        assert [(seq, event) for seq, event, _ in waiting] == list(
            enumerate(
                [
                    "room-created",
                    "participant-connected",
                    "track-added",
                    "participant-connected",
                    "track-added",
                    "track-removed",
                    "participant-disconnected",
                    "track-removed",
                    "participant-disconnected",
                    "room-ended",
                ]
            )
        )
        assert winner.appended == 2  # bob's join and track, written by the winner only
        assert loser.appended == 3 + 5  # before, and after the race (the end of the room)
    finally:
        db.close()


async def test_a_component_started_on_an_existing_log_sends_nothing_for_the_past(sqlite_harness: Harness):
    h = sqlite_harness
    old = await h.room("/past")
    h.start(h.component())
    await h.join(old, "alice")
    new = await h.room("/present")

    await h.receiver.wait_for(lambda: len(h.receiver.events("/present")) == 1)
    await h.receiver.wait_for(lambda: len(h.receiver.events("/past")) == 1)
    assert h.receiver.events("/past") == ["participant-connected"]
    assert h.receiver.at("/past")[0].params["SequenceNumber"] == "0"
    assert h.receiver.at("/present")[0].params["RoomSid"] == new
