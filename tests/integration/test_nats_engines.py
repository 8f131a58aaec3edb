"""Two engine processes in one NATS queue group on one SQLite store: the scale-out of DESIGN.md §4.

Both are the installed command, `openrooms serve --role engine --nats <url> --state-dir <dir>`,
on the same state dir (so the same event store, read model and credentials), against one
nats-server started here with its monitoring port, which shows that both engines were handed
requests. Callers only speak NATS. The room rules must hold across the two processes: a room of
ten admits exactly ten of forty concurrent connects, and one unique name gives one room.

The second engine is started once the first runs, as an operator scales out: the first start
on an empty state dir generates the credentials (adapters/config.py writes them without a lock;
two first starts at the same moment each generate their own).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from adapters.bootstrap import open_application
from adapters.config import load_config
from adapters.nats.relay import STREAM
from adapters.nats.server import free_port, nats_server_binary
from adapters.replay import verify_store

TIMEOUT = 30.0
"""Generous for a cold interpreter importing the whole stack; never reached when things work."""
REQUEST_TIMEOUT = 10.0

PUBLIC_URL = "https://rooms.example.test"


@dataclass(frozen=True)
class NatsServer:
    url: str
    monitor: str

    def engine_connections(self) -> list[dict[str, Any]]:
        """The client connections subscribed to `rooms.cmd.*` (the engines), from /connz."""
        with urllib.request.urlopen(f"{self.monitor}/connz?subs=1", timeout=5) as response:
            connz = json.load(response)
        return [c for c in connz["connections"] if "rooms.cmd.*" in c.get("subscriptions_list", [])]


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """nats-server with JetStream and its HTTP monitoring port, on free loopback ports."""
    store = tmp_path_factory.mktemp("nats")
    port, monitor = free_port(), free_port()
    command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js", "-sd", str(store)]
    with (store / "nats-server.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        for ready in (port, monitor):
            while True:
                assert process.poll() is None, f"nats-server exited with {process.returncode}"
                try:
                    socket.create_connection(("127.0.0.1", ready), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "nats-server did not listen"
                    time.sleep(0.02)  # a child's socket has no readiness event to wait on
        yield NatsServer(f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}")
    finally:
        process.terminate()
        process.wait(TIMEOUT)


@dataclass
class Cluster:
    state_dir: Path
    engines: list[Any]
    server: NatsServer


@pytest.fixture(scope="module")
def cluster(
    nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., Any]
) -> Iterator[Cluster]:
    """Two engine processes on one state dir, both running; killed at the end if still alive."""
    state_dir = tmp_path_factory.mktemp("cluster") / "state"
    engines: list[Any] = []
    try:
        for name in ("engine-a", "engine-b"):
            # One public URL for the deployment (docs/operations.md): resources look the same
            # whichever engine answers.
            engine = serve(
                state_dir, "--role", "engine", "--nats", nats_server.url, "--public-url", PUBLIC_URL, name=name
            )
            engines.append(engine)
            engine.wait_for("engine running, role engine")
        yield Cluster(state_dir, engines, nats_server)
    finally:
        for engine in engines:
            engine.kill()


@pytest_asyncio.fixture
async def nc(cluster: Cluster) -> AsyncIterator[Client]:
    client = await nats.connect(cluster.server.url)
    try:
        yield client
    finally:
        await client.close()


async def command(nc: Client, name: str, **body: Any) -> dict[str, Any]:
    reply = await nc.request(f"rooms.cmd.{name}", json.dumps(body).encode(), timeout=REQUEST_TIMEOUT)
    decoded: dict[str, Any] = json.loads(reply.data)
    return decoded


async def query(nc: Client, name: str, **body: Any) -> dict[str, Any]:
    reply = await nc.request(f"rooms.qry.{name}", json.dumps(body).encode(), timeout=REQUEST_TIMEOUT)
    decoded: dict[str, Any] = json.loads(reply.data)
    assert decoded["ok"] is True, decoded
    result: dict[str, Any] = decoded["result"]
    return result


def delivered(cluster: Cluster) -> dict[int, int]:
    """Messages the server handed to each engine connection so far, by connection id."""
    return {c["cid"]: c["out_msgs"] for c in cluster.server.engine_connections()}


async def test_a_room_of_ten_admits_exactly_ten_of_forty_concurrent_connects_across_two_engines(
    cluster: Cluster, nc: Client
) -> None:
    assert len(cluster.server.engine_connections()) == 2, "both engines subscribe to rooms.cmd.*"
    created = await command(nc, "create_room", command_id="cap-room", unique_name="cap-ten", max_participants=10)
    assert created["ok"], created
    room = created["result"]["sid"]
    before = delivered(cluster)

    replies = await asyncio.gather(
        *(
            command(nc, "connect_participant", command_id=f"cap-{i}", room="cap-ten", identity=f"guest-{i:02}")
            for i in range(40)
        )
    )

    admitted = [r["result"] for r in replies if r["ok"]]
    refused = Counter(r["error"]["code"] for r in replies if not r["ok"])
    assert len(admitted) == 10 and refused == Counter({53105: 30}), refused
    assert {p["room_sid"] for p in admitted} == {room}
    after = delivered(cluster)
    assert set(after) == set(before)
    assert all(after[cid] > before[cid] for cid in after), f"one engine answered everything: {before} -> {after}"
    listed = (await query(nc, "list_participants", room=room, page_size=50))["participants"]
    assert sorted(p["sid"] for p in listed) == sorted(p["sid"] for p in admitted)
    assert {p["status"] for p in listed} == {"connected"}


async def test_concurrent_creates_of_one_unique_name_across_two_engines_give_exactly_one_room(
    cluster: Cluster, nc: Client
) -> None:
    replies = await asyncio.gather(
        *(command(nc, "create_room", command_id=f"name-{i}", unique_name="only-one") for i in range(20))
    )

    winners = [r["result"] for r in replies if r["ok"]]
    assert len(winners) == 1, winners
    assert Counter(r["error"]["code"] for r in replies if not r["ok"]) == Counter({53113: 19})
    rooms = (await query(nc, "list_rooms", unique_name="only-one"))["rooms"]
    assert [r["sid"] for r in rooms] == [winners[0]["sid"]]
    again = await command(nc, "create_room", command_id="name-0", unique_name="only-one")
    assert again == replies[0]


def commands_decided(engine: Any, command_name: str) -> float:
    """`openrooms_commands_total` of one command at one engine: the commands it decided itself."""
    line = next(line for line in engine.lines if "openrooms: HTTP http://" in line)
    port = int(line.rsplit(":", 1)[1].split()[0].split("/")[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(sample.rsplit(" ", 1)[1])
        for sample in text.splitlines()
        if sample.startswith("openrooms_commands_total{") and f'command="{command_name}"' in sample
    )


async def test_the_commands_of_one_room_are_decided_by_one_engine_whichever_engine_receives_them(
    cluster: Cluster, nc: Client
) -> None:
    created = await command(nc, "create_room", command_id="owned-room", unique_name="owned")
    room = created["result"]["sid"]
    joined = await command(
        nc, "connect_participant", command_id="owned-join", room=room, identity="solo",
        tracks=[{"name": "cam", "kind": "video"}],
    )  # fmt: skip
    participant, track = joined["result"]["sid"], joined["result"]["published_track_sids"][0]
    before = [commands_decided(engine, "set_track_enabled") for engine in cluster.engines]
    received_before = delivered(cluster)

    replies = [
        await command(
            nc,
            "set_track_enabled",
            command_id=f"owned-{i}",
            room_sid=room,
            participant_sid=participant,
            track_sid=track,
            enabled=bool(i % 2),
        )
        for i in range(40)
    ]

    assert all(r["ok"] for r in replies), replies
    decided = sorted(commands_decided(e, "set_track_enabled") - b for e, b in zip(cluster.engines, before, strict=True))
    assert decided == [0, 40]  # one engine decided all of them ...
    received = delivered(cluster)
    assert all(received[cid] > received_before[cid] for cid in received)  # ... though both received some


async def test_both_engines_stop_on_sigterm_with_exit_0_leaving_one_consistent_store_and_stream(
    cluster: Cluster, nc: Client
) -> None:
    done = await asyncio.gather(*(command(nc, "create_room", command_id=f"last-{i}") for i in range(10)))
    assert all(r["ok"] for r in done), done
    js = nc.jetstream()

    codes = [engine.stop() for engine in cluster.engines]

    for engine in cluster.engines:
        assert "Traceback" not in engine.stderr(), engine.stderr()
        assert engine.lines[-1] == "openrooms: stopped"
    assert codes == [0, 0], [e.stderr() for e in cluster.engines]
    config = load_config(state_dir=str(cluster.state_dir), env={})
    report = await asyncio.to_thread(verify_store, config.store_url, config.credentials.account_sid, workers=1)
    assert report.consistent, (report.problems, report.differences)
    app = open_application(config.store_url)
    try:
        log = [
            f"{n.originator_id}:{n.originator_version}"
            for n in app.recorder.select_notifications(start=1, limit=100_000)
        ]
    finally:
        app.close()
    info = await js.stream_info(STREAM)
    stream = [
        (await js.get_msg(STREAM, seq)).headers["Nats-Msg-Id"]  # type: ignore[index]
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]
    assert stream == log, "both engines relay the log: the stream must hold each event once, in log order"
