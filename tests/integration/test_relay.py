"""The event relay against a real nats-server: the log, once and in order, in JetStream.

An engine service (SQLite state dir, run in the test's event loop) commits commands; the relay
publishes its log into the stream `ROOMS_EVENTS` on `rooms.evt.<room_sid>.<event>` with
`Nats-Msg-Id` = `<aggregate id>:<version>`. What a test compares is the stream as a consumer
reads it (every message, by stream sequence) with the log as an auditor reads it
(`app.recorder.select_notifications`): same events, same order, none missing, none twice.

Each test has its own nats-server, because some kill it (SIGKILL, as a crash) and start it again
on the same port and store dir. Nothing sleeps to synchronise: tests wait for the relay's
acknowledged batches (its `observe_ack` hook) or drive `relay.relay_once()` themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from adapters.bootstrap import EngineService, build_engine_service
from adapters.config import load_config
from adapters.nats.lease import Lease
from adapters.nats.relay import STREAM, EventRelay, StreamSettings
from adapters.nats.server import EmbeddedNatsServer
from domain import commands as cmd
from domain.codec import decode
from domain.events import event_name

TIMEOUT = 10.0
"""How long a test waits for the relay or the service (never reached when things work)."""
ACK_TIMEOUT = 0.5
"""The relay's wait for JetStream acks; short so that an outage is noticed quickly."""
_command_ids = itertools.count(1)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    """This test's nats-server; a test that kills it starts the next one with `restart()`."""
    server = EmbeddedNatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def restart(server: EmbeddedNatsServer) -> EmbeddedNatsServer:
    """A new nats-server on the same port and JetStream store dir."""
    again = EmbeddedNatsServer(server.store_dir, port=server.port)
    again.start()
    return again


def crash(server: EmbeddedNatsServer) -> None:
    assert server.process is not None
    server.process.kill()  # SIGKILL: no goodbye to clients, no orderly JetStream shutdown
    server.process.wait(TIMEOUT)


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[EngineService]:
    """An engine service as `openrooms serve` runs it (command bus, follower, scheduler)."""
    engine = build_engine_service(load_config(state_dir=str(tmp_path / "state"), env={}))
    stopping = asyncio.Event()
    running = asyncio.create_task(engine.run(stopping))
    try:
        yield engine
    finally:
        stopping.set()
        try:
            await asyncio.wait_for(running, TIMEOUT)
        finally:
            engine.close()


async def connect(url: str) -> Client:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.05, connect_timeout=2)


class AckWatch:
    """The relay's `observe_ack` hook: an event set after every batch JetStream acknowledged."""

    def __init__(self) -> None:
        self.acked = asyncio.Event()

    def __call__(self, _seconds: float) -> None:
        self.acked.set()


def watch_failures(relay: EventRelay) -> asyncio.Event:
    """An event set when a `relay_once()` of the running relay fails (its `run()` then retries)."""
    failed = asyncio.Event()
    relay_once = relay.relay_once

    async def observed() -> bool:
        try:
            return await relay_once()
        except Exception:
            failed.set()
            raise

    relay.relay_once = observed  # type: ignore[method-assign]
    return failed


def new_relay(
    service: EngineService,
    nc: Client,
    watch: AckWatch | None = None,
    batch_size: int = 1000,
    lease: Lease | None = None,
) -> EventRelay:
    return EventRelay(
        service.app,
        nc,
        service.read_model,
        StreamSettings(),
        ack_timeout=ACK_TIMEOUT,
        observe_ack=watch,
        batch_size=batch_size,
        lease=lease,
    )


# --- what the log and the stream hold ------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One event as a consumer of the stream sees it: where, under which dedup id, which body."""

    subject: str
    msg_id: str
    position: int


def last_position(service: EngineService) -> int:
    return service.app.recorder.max_notification_id() or 0


def the_log(service: EngineService) -> list[Entry]:
    """Every event of the log, in log order, with the subject and id the contract gives it."""
    entries = []
    start = 1
    while page := service.app.recorder.select_notifications(start=start, limit=500):
        for n in page:
            event = decode(n.topic, n.state)
            aggregate = str(n.originator_id)
            room = aggregate if aggregate.startswith("RM") else event.room_sid
            subject = f"rooms.evt.{room}.{event_name(type(event))}"
            entries.append(Entry(subject, f"{aggregate}:{n.originator_version}", n.id))
        start = page[-1].id + 1
    return entries


async def the_stream(js: JetStreamContext) -> list[Entry]:
    """Every message of ROOMS_EVENTS, in stream order."""
    info = await js.stream_info(STREAM)
    if info.state.messages == 0:
        return []
    entries = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(STREAM, seq)
        assert msg.subject is not None and msg.headers is not None and msg.data is not None
        body = json.loads(msg.data)
        entries.append(Entry(msg.subject, msg.headers["Nats-Msg-Id"], body["position"]))
    assert len(entries) == info.state.messages
    return entries


def per_room_versions(entries: list[Entry]) -> dict[str, list[int]]:
    """For each room aggregate, the versions of its events in the order the stream holds them."""
    versions: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        aggregate, version = entry.msg_id.rsplit(":", 1)
        if aggregate.startswith("RM"):
            versions[aggregate].append(int(version))
    return versions


def assert_stream_is_the_log(stream: list[Entry], log: list[Entry]) -> None:
    assert len(stream) == len(log), f"{len(stream)} messages for {len(log)} events"
    assert len({e.msg_id for e in stream}) == len(stream), "an event is in the stream twice"
    assert stream == log
    for room, versions in per_room_versions(stream).items():
        assert versions == list(range(1, len(versions) + 1)), f"{room}: {versions}"


# --- driving the engine and the relay -------------------------------------------------------------


async def execute(service: EngineService, command_type: type[cmd.Command], **fields: Any) -> Any:
    fields.setdefault("command_id", f"relay-test-{next(_command_ids)}")
    async with asyncio.timeout(TIMEOUT):
        result = await service.bus.execute(command_type(**fields))
    assert result.ok, result
    return result


async def a_meeting(service: EngineService, name: str) -> str:
    """A room with a unique name, three participants with tracks, some leaving, then the end."""
    room = str((await execute(service, cmd.CreateRoom, unique_name=name)).room_sid)
    mic = cmd.TrackSpec(name="mic", kind="audio")
    cam = cmd.TrackSpec(name="cam", kind="video")
    alice = (
        await execute(service, cmd.ConnectParticipant, room=room, identity="alice", tracks=[mic, cam])
    ).participant_sid
    await execute(service, cmd.ConnectParticipant, room=name, identity="bob", tracks=[mic])
    await execute(service, cmd.ConnectParticipant, room=room, identity="carol")
    await execute(service, cmd.UpdateRecordingRules, room_sid=room, rules=[{"type": "include", "kind": "audio"}])
    await execute(service, cmd.DisconnectParticipant, room_sid=room, participant_sid=alice)
    await execute(service, cmd.DisconnectParticipant, room_sid=room, participant_sid="bob")
    return room


async def relay_everything(relay: EventRelay) -> None:
    """Drive the relay until it has published the whole log."""
    async with asyncio.timeout(TIMEOUT):
        while await relay.relay_once():
            pass
    assert relay.position() == relay.app.recorder.max_notification_id()


async def caught_up(relay: EventRelay, watch: AckWatch) -> None:
    """Wait until the running relay has had everything committed so far acknowledged."""
    target = relay.app.recorder.max_notification_id() or 0
    async with asyncio.timeout(TIMEOUT):
        while True:
            watch.acked.clear()
            if relay.position() >= target:
                return
            await watch.acked.wait()


def leased_relays(
    service: EngineService, nc: Client, names: tuple[str, ...], ttl_s: float
) -> tuple[list[EventRelay], list[AckWatch]]:
    """Relays on one store, each with its lease on the same key (as each engine process has)."""
    watches = [AckWatch() for _ in names]
    relays = [
        new_relay(service, nc, watch, lease=Lease(nc.jetstream(), name, ttl_s=ttl_s))
        for name, watch in zip(names, watches, strict=True)
    ]
    return relays, watches


async def run_leased(service: EngineService, relays: list[EventRelay]) -> list[asyncio.Task[None]]:
    """The first relay takes the lease, the others find it held; then all run, woken by every commit."""
    first, *others = relays
    await first.ensure_stream()
    assert await first.leads()
    for other in others:
        assert not await other.leads()
    for relay in relays:  # as every engine's commits wake every relay
        service.bus.after_batch.append(relay.wake.set)
    return [asyncio.create_task(relay.run()) for relay in relays]


# --- the tests ------------------------------------------------------------------------------------


async def test_every_event_is_in_the_stream_once_on_its_rooms_subject_with_its_dedup_id_in_log_order(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    standup = await a_meeting(service, "standup")
    retro = await a_meeting(service, "retro")
    await execute(service, cmd.CompleteRoom, room_sid=retro)
    nc = await connect(nats_server.url)
    try:
        js = nc.jetstream()
        relay = new_relay(service, nc)
        await relay.ensure_stream()

        await relay_everything(relay)

        log = the_log(service)
        stream = await the_stream(js)
        assert_stream_is_the_log(stream, log)
        assert {e.subject.split(".")[2] for e in stream} == {standup, retro}
        names = [e.subject.rsplit(".", 1)[1] for e in stream if e.subject.startswith(f"rooms.evt.{retro}.")]
        assert names[:2] == ["room_created", "room_name_claimed"] and names[-2:] == ["room_ended", "room_name_released"]
        assert {"participant_connected", "track_published", "track_subscribed", "recording_requested"} <= set(names)
        first = await js.get_msg(STREAM, 1)
        body = json.loads(first.data or b"")
        assert (body["originator_id"], body["originator_version"], body["position"]) == (standup, 1, 1)
        assert body["unique_name"] == "standup"
        assert await relay.relay_once() is False
        assert (await js.stream_info(STREAM)).state.messages == len(log)
    finally:
        await nc.close()


async def test_after_nats_is_killed_and_restarted_the_running_relay_catches_up_without_gap_or_duplicate(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    nc = await connect(nats_server.url)
    watch = AckWatch()
    relay = new_relay(service, nc, watch)
    await relay.ensure_stream()
    service.bus.after_batch.append(relay.wake.set)
    failed = watch_failures(relay)
    running = asyncio.create_task(relay.run())
    restarted: EmbeddedNatsServer | None = None
    try:
        await a_meeting(service, "before")
        await caught_up(relay, watch)
        assert_stream_is_the_log(await the_stream(nc.jetstream()), the_log(service))
        relayed = relay.position()

        crash(nats_server)
        failed.clear()
        during = [await a_meeting(service, f"during-{i}") for i in range(3)]  # the engine commits without NATS
        assert last_position(service) > relayed
        async with asyncio.timeout(TIMEOUT):
            await failed.wait()  # the relay tried to publish them, got no acks, and will retry
        assert relay.position() == relayed, "nothing can have been acknowledged"
        restarted = restart(nats_server)
        await caught_up(relay, watch)

        log = the_log(service)
        stream = await the_stream(nc.jetstream())
        assert_stream_is_the_log(stream, log)
        assert {e.subject.split(".")[2] for e in stream} >= set(during)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await nc.close()
        if restarted is not None:
            restarted.stop()


async def test_a_restarted_relay_resumes_from_its_stored_position_and_publishes_nothing_twice(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    first_nc = await connect(nats_server.url)
    first = new_relay(service, first_nc)
    await first.ensure_stream()
    await a_meeting(service, "first")
    await relay_everything(first)
    stored = first.position()
    await first_nc.close()

    await a_meeting(service, "second")
    new_events = last_position(service) - stored
    nc = await connect(nats_server.url)
    try:
        js = nc.jetstream()
        second = new_relay(service, nc)
        await second.ensure_stream()
        assert second.position() == stored

        await relay_everything(second)

        assert second.published == new_events, "the new relay published only what came after the stored position"
        assert_stream_is_the_log(await the_stream(js), the_log(service))
    finally:
        await nc.close()


async def test_batches_are_acked_once_and_a_foreign_message_in_between_makes_the_relay_publish_its_batch_again(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    await a_meeting(service, "batched")
    nc = await connect(nats_server.url)
    try:
        js = nc.jetstream()
        relay = new_relay(service, nc, batch_size=3)
        await relay.ensure_stream()
        assert await relay.relay_once() and await relay.relay_once() and await relay.relay_once()
        assert (relay.acked_each, relay.acked_once) == (1, 2)  # the first batch learns the stream's sequence
        # Another publisher's message (an operator's test, say) lands between two batches: the next
        # batch's one ack cannot show that all of its messages were stored.
        await js.publish("rooms.evt.RMforeign.note", b'{"position": 0}', headers={"Nats-Msg-Id": "foreign:1"})
        assert await relay.relay_once()
        assert (relay.acked_each, relay.acked_once) == (2, 2)  # published again, acked one by one
        await relay_everything(relay)
        assert relay.acked_once > 2

        stream = [e for e in await the_stream(js) if e.msg_id != "foreign:1"]
        assert_stream_is_the_log(stream, the_log(service))
    finally:
        await nc.close()


async def test_a_relay_that_lost_its_position_after_the_acks_publishes_again_and_the_stream_drops_the_repeats(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    await a_meeting(service, "once")
    nc = await connect(nats_server.url)
    try:
        js = nc.jetstream()
        relay = new_relay(service, nc)
        await relay.ensure_stream()
        await relay_everything(relay)
        end = relay.position()
        # As if the relay crashed after JetStream acknowledged its last batch but before it stored
        # how far it got: its stored position is behind what the stream already holds.
        assert service.read_model.advance("relay", end, end // 2)
        await a_meeting(service, "twice")

        again = new_relay(service, nc)
        await relay_everything(again)

        assert again.published == last_position(service) - end // 2
        assert_stream_is_the_log(await the_stream(js), the_log(service))
    finally:
        await nc.close()


async def test_of_two_relays_on_one_store_only_the_lease_holder_publishes_and_the_other_takes_over_when_it_stops(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    nc = await connect(nats_server.url)
    relays, watches = leased_relays(service, nc, ("first", "second"), ttl_s=0.6)
    first, second = relays
    try:
        running = await run_leased(service, relays)

        await a_meeting(service, "standup")
        await caught_up(first, watches[0])
        published_by_first = len(the_log(service))
        assert (first.published, second.published) == (published_by_first, 0)

        running[0].cancel()  # the holder stops, as a relay process does at SIGTERM, and gives the lease up
        await asyncio.gather(running[0], return_exceptions=True)
        await first.lease.release()  # type: ignore[union-attr]
        await a_meeting(service, "retro")
        await caught_up(second, watches[1])

        log = the_log(service)
        assert second.published == len(log) - published_by_first
        assert_stream_is_the_log(await the_stream(nc.jetstream()), log)
        running[1].cancel()
        await asyncio.gather(running[1], return_exceptions=True)
    finally:
        await nc.close()


async def test_a_relay_started_again_under_the_name_of_one_that_died_takes_its_lease_back_at_once(
    nats_server: EmbeddedNatsServer,
) -> None:
    nc = await connect(nats_server.url)
    try:
        js = nc.jetstream()
        died = Lease(js, "rooms.relay.first", ttl_s=60.0)
        assert await died.held()  # then its process is killed: the entry stays for a minute

        assert not await Lease(js, "rooms.relay.other", ttl_s=60.0).held()
        successor = Lease(js, "rooms.relay.first", ttl_s=60.0)  # serve's next relay process
        assert await successor.held(), "the successor waited for its predecessor's entry to expire"
        assert not await Lease(js, "rooms.relay.other", ttl_s=60.0).held()
    finally:
        await nc.close()


async def test_a_lease_holder_kept_busy_by_commits_for_longer_than_the_lease_keeps_it_and_publishes_alone(
    nats_server: EmbeddedNatsServer, service: EngineService
) -> None:
    nc = await connect(nats_server.url)
    relays, watches = leased_relays(service, nc, ("busy", "waiting"), ttl_s=0.3)
    busy, waiting = relays
    try:
        running = await run_leased(service, relays)
        room = str((await execute(service, cmd.CreateRoom, unique_name="steady")).room_sid)
        cam = cmd.TrackSpec(name="cam", kind="video")
        joined = await execute(service, cmd.ConnectParticipant, room=room, identity="solo", tracks=[cam])
        participant, track = joined.participant_sid, joined.track_sids[0]

        # Commands one after another for four lease lifetimes: the holder always has a batch to publish.
        ends = asyncio.get_running_loop().time() + 4 * 0.3
        n = 0
        while asyncio.get_running_loop().time() < ends:
            await execute(
                service, cmd.SetTrackEnabled, room_sid=room, participant_sid=participant, track_sid=track,
                enabled=bool(n % 2),
            )  # fmt: skip
            n += 1
        await caught_up(busy, watches[0])

        log = the_log(service)
        assert (busy.published, waiting.published) == (len(log), 0), "the holder renewed its lease while busy"
        assert_stream_is_the_log(await the_stream(nc.jetstream()), log)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    finally:
        await nc.close()
