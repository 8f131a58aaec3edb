"""`openrooms serve` with its bundled nats-server, driven over NATS as a user's app would.

The installed command runs in a subprocess with nothing in its environment but PATH; it starts
a nats-server child on a free port and writes its URL to `<state dir>/nats.url`. The test
speaks NATS only (commands, queries, the JetStream stream), stops the service with SIGTERM and
starts it again on the same state dir: rooms, participants, command ids and the event stream
all survive. At the end a bare nats-server on the state dir's JetStream store shows what the
stream kept, to compare with the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from adapters.bootstrap import open_application
from adapters.config import load_config
from adapters.nats.relay import STREAM
from adapters.nats.server import EmbeddedNatsServer
from adapters.relay_process import PROCESS_NAME

TIMEOUT = 30.0
"""Generous: a cold interpreter imports the whole stack. Never reached when things work."""
REQUEST_TIMEOUT = 10.0
PUBLIC_URL = "https://rooms.example.test"
"""Fixed, so resources compare equal across restarts (the HTTP port is free-chosen each time)."""


def accepts(url: str) -> bool:
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


async def request(nc: Client, subject: str, **body: Any) -> dict[str, Any]:
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=REQUEST_TIMEOUT)
    decoded: dict[str, Any] = json.loads(reply.data)
    assert decoded["ok"] is True, decoded
    result: dict[str, Any] = decoded["result"]
    return result


async def stream_ids(url: str) -> list[str]:
    """The Nats-Msg-Id of every message in ROOMS_EVENTS, in stream order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            headers = (await js.get_msg(STREAM, seq)).headers
            assert headers is not None
            ids.append(headers["Nats-Msg-Id"])
        assert len(ids) == info.state.messages
        return ids
    finally:
        await nc.close()


def log_ids(state_dir: Path) -> list[str]:
    """`<aggregate id>:<version>` of every event in the log, in log order."""
    app = open_application(load_config(state_dir=str(state_dir), env={}).store_url)
    try:
        return [
            f"{n.originator_id}:{n.originator_version}"
            for n in app.recorder.select_notifications(start=1, limit=100_000)
        ]
    finally:
        app.close()


def eventually(check: Callable[[], bool]) -> bool:
    """Whether `check()` holds within TIMEOUT, polled: for what serve shows only over HTTP, which
    has no push to wait on instead."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def metric(http: str, name: str) -> str:
    """The value of the unlabelled metric `name` on serve's /metrics."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=REQUEST_TIMEOUT) as response:
        [line] = [line for line in response.read().decode().splitlines() if line.startswith(f"{name} ")]
    return line.split()[1]


def healthy(http: str) -> bool:
    """Whether serve's /healthz answers 200 (503 while its NATS connection is down)."""
    try:
        with urllib.request.urlopen(f"{http}/healthz", timeout=REQUEST_TIMEOUT):
            return True
    except urllib.error.HTTPError as error:
        error.close()
        return False


def test_serve_answers_over_its_bundled_nats_and_keeps_rooms_command_ids_and_the_stream_across_a_restart(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    state = tmp_path / "state"

    first = serve(state, "--public-url", PUBLIC_URL)
    try:
        first.wait_for("engine running")
        url = first.nats_url()
        assert f"openrooms: NATS {url}" in first.lines
        [nats_pid] = first.nats_children()

        async def day_one() -> tuple[dict[str, Any], dict[str, Any]]:
            nc = await nats.connect(url)
            try:
                room = await request(nc, "rooms.cmd.create_room", command_id="create-standup", unique_name="standup")
                mic = [{"name": "mic", "kind": "audio"}]
                alice = await request(
                    nc, "rooms.cmd.connect_participant", command_id="connect-alice", room="standup", identity="alice",
                    tracks=mic,
                )  # fmt: skip
                return room, alice
            finally:
                await nc.close()

        room, alice = asyncio.run(day_one())
        assert (room["unique_name"], alice["room_sid"], alice["status"]) == ("standup", room["sid"], "connected")
        # Nobody queried: the read model catches up with the commits all the same.
        http = first.http_url()
        assert eventually(lambda: metric(http, "openrooms_read_model_lag_events") == "0.0")
        code = first.stop()
    finally:
        first.kill()
    assert code == 0, first.stderr()
    assert first.lines[-1] == "openrooms: stopped"
    assert "Traceback" not in first.stderr(), first.stderr()
    assert not Path(f"/proc/{nats_pid}").exists(), "the bundled nats-server outlived serve"
    assert not accepts(url)

    second = serve(state, "--public-url", PUBLIC_URL)
    try:
        second.wait_for("engine running")
        url = second.nats_url()
        [nats_pid] = second.nats_children()

        async def day_two() -> list[str]:
            kept = await stream_ids(url)
            assert kept == log_ids(state), "the stream kept every event of the first run, each once"
            nc = await nats.connect(url)
            try:
                assert await request(nc, "rooms.qry.get_room", room="standup") == room
                found = await request(nc, "rooms.qry.get_participant", room="standup", participant="alice")
                assert (found["sid"], found["status"]) == (alice["sid"], "connected")
                again = await request(
                    nc, "rooms.cmd.connect_participant", command_id="connect-alice", room="standup", identity="alice"
                )
                assert again["sid"] == alice["sid"], "a repeated command id answers with the first result"
                listed = await request(nc, "rooms.qry.list_participants", room="standup")
                assert [p["sid"] for p in listed["participants"]] == [alice["sid"]]
                await request(
                    nc, "rooms.cmd.connect_participant", command_id="connect-bob", room="standup", identity="bob"
                )
            finally:
                await nc.close()
            return kept

        kept = asyncio.run(day_two())
        code = second.stop()
    finally:
        second.kill()
    assert code == 0, second.stderr()
    assert "Traceback" not in second.stderr(), second.stderr()
    assert not Path(f"/proc/{nats_pid}").exists(), "the bundled nats-server outlived serve"

    stream = stream_on_disk(state)
    assert stream == log_ids(state) and len(set(stream)) == len(stream)
    assert len(stream) > len(kept), "the second run's events (bob's connect) were relayed before it exited"


async def relayed(nc: Client, state: Path, before: Callable[[], Awaitable[Any]]) -> None:
    """Run `before()` (commands), then wait until the relay has published every event they
    added to the log (by Nats-Msg-Id; a core subscription, made first, sees each publish)."""
    seen: set[str] = set()
    arrived = asyncio.Event()

    async def note(msg: Msg) -> None:
        seen.add((msg.headers or {}).get("Nats-Msg-Id", ""))
        arrived.set()

    subscription = await nc.subscribe("rooms.evt.>", cb=note)
    try:
        already = set(log_ids(state))
        await before()
        expected = set(log_ids(state)) - already
        assert expected, "the commands added no event"
        async with asyncio.timeout(TIMEOUT):
            while not expected <= seen:
                arrived.clear()
                await arrived.wait()
    finally:
        await subscription.unsubscribe()


def stream_on_disk(state: Path) -> list[str]:
    """The stream as the service left it on disk: a bare nats-server on the state dir's
    JetStream store."""
    bare = EmbeddedNatsServer(state / "nats")
    bare.start()
    try:
        return asyncio.run(stream_ids(bare.url))
    finally:
        bare.stop()


async def create_rooms(url: str, numbers: range) -> None:
    """`room-<n>` for each n, one create_room command each (command id `create-<n>`)."""
    nc = await nats.connect(url)
    try:
        for i in numbers:
            await request(nc, "rooms.cmd.create_room", command_id=f"create-{i}", unique_name=f"room-{i}")
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("child", "logged_as", "restarts"),
    [
        (PROCESS_NAME, "relay process", "openrooms_relay_restarts_total"),
        ("nats-server", "nats-server", "openrooms_nats_server_restarts_total"),
    ],
)
def test_a_child_of_serve_killed_under_it_is_started_again_and_the_stream_still_equals_the_log(
    tmp_path: Path, serve: Callable[..., Any], child: str, logged_as: str, restarts: str
) -> None:
    state = tmp_path / "state"
    server = serve(state)
    try:
        server.wait_for("engine running")
        url, http = server.nats_url(), server.http_url()

        async def scenario() -> int:
            back = asyncio.Event()

            async def reconnected() -> None:
                back.set()

            nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, reconnected_cb=reconnected)
            try:
                await relayed(nc, state, lambda: create_rooms(url, range(3)))
                [killed] = server.children(child)
                os.kill(killed, signal.SIGKILL)  # the OOM killer, say
                if child == "nats-server":  # every connection is down until serve starts it again
                    async with asyncio.timeout(TIMEOUT):
                        await back.wait()
                    assert await asyncio.to_thread(eventually, lambda: healthy(http)), "serve did not reconnect"
                await relayed(nc, state, lambda: create_rooms(url, range(3, 6)))
                return killed
            finally:
                await nc.close()

        killed = asyncio.run(scenario())
        [started] = server.children(child)
        assert started != killed
        assert metric(http, restarts) == "1.0"
        code = server.stop()
    finally:
        server.kill()
    assert code == 0, server.stderr()
    assert f"{logged_as} {killed} exited with -9; starting another" in server.stderr()
    assert not Path(f"/proc/{started}").exists(), f"the restarted {child} outlived serve"
    stream = stream_on_disk(state)
    assert stream == log_ids(state), "the stream after the restart: every event, once, in log order"
    assert len(stream) >= 6


def test_ctrl_c_stops_serve_with_exit_0_after_relaying_everything_and_then_stops_its_nats_server(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    state = tmp_path / "state"
    server = serve(state)
    try:
        server.wait_for("engine running")
        [nats_pid] = server.nats_children()

        asyncio.run(create_rooms(server.nats_url(), range(5)))
        code = server.interrupt()
    finally:
        server.kill()
    assert code == 0, server.stderr()
    assert server.lines[-1] == "openrooms: stopped"
    assert "Traceback" not in server.stderr(), server.stderr()
    assert not Path(f"/proc/{nats_pid}").exists(), "the bundled nats-server outlived serve"

    assert stream_on_disk(state) == log_ids(state)


def test_serve_on_an_external_nats_stops_with_exit_0_when_that_nats_is_down(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    external = EmbeddedNatsServer(tmp_path / "nats")
    external.start()
    state = tmp_path / "state"
    server = serve(state, "--role", "engine", "--nats", external.url)
    try:
        server.wait_for("engine running, role engine")
        assert not (state / "nats.url").exists(), "no bundled nats-server with --nats"

        async def one_room() -> None:
            nc = await nats.connect(external.url)
            try:
                await request(nc, "rooms.cmd.create_room", command_id="before-the-outage", unique_name="standup")
            finally:
                await nc.close()

        asyncio.run(one_room())
        external.stop()
        code = server.stop()
    finally:
        server.kill()
        external.stop()
    assert code == 0, server.stderr()
    assert server.lines[-1] == "openrooms: stopped"
    assert "Traceback" not in server.stderr(), server.stderr()


def test_sigusr1_writes_every_thread_and_task_stack_to_stderr_and_serve_keeps_serving(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    server = serve(tmp_path / "state")
    try:
        server.wait_for("engine running")
        os.kill(server.process.pid, signal.SIGUSR1)  # what an operator does to see where a service is
        assert eventually(lambda: "--- end of stacks ---" in server.stderr()), server.stderr()
        asyncio.run(create_rooms(server.nats_url(), range(2)))
        code = server.stop()
    finally:
        server.kill()
    assert code == 0, server.stderr()
    dumped = server.stderr()
    assert "Current thread" in dumped or "Thread 0x" in dumped, "the threads' stacks"
    assert "asyncio tasks:" in dumped
    assert 'adapters/bootstrap.py", line' in dumped and ", in run\n" in dumped, "the service task's stack"
    assert "still stopping" not in dumped, "a prompt stop reports nothing"
