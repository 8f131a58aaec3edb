"""`/healthz` and `/metrics` served by aiohttp on a free port, read with a real HTTP client.

The status gauges count rows of a real SQLite read model, filled by an engine and a follower.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.bootstrap import open_read_model
from adapters.http.app import build_app, serve_http
from adapters.metrics import Metrics, status_counts
from adapters.store.read_model import Follower, ReadModel
from domain import commands as cmd
from domain.engine import Engine
from domain.results import CommandResult

ACCOUNT_SID = "AC" + "0" * 32


@dataclass
class Rooms:
    """An engine on a SQLite file and the read model its follower keeps."""

    engine: Engine
    read_model: ReadModel
    follower: Follower
    ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    async def execute(self, command: cmd.Command) -> CommandResult:
        return await asyncio.to_thread(self.engine.execute, command)

    def command(self, command_type: type[cmd.Command], **fields: Any) -> cmd.Command:
        return command_type(command_id=f"cmd-{next(self.ids)}", **fields)


@pytest.fixture
def rooms(tmp_path: Path, open_engine: Callable[..., Engine]) -> Iterator[Rooms]:
    url = "sqlite:///" + str(tmp_path / "e.db")
    engine = open_engine(url)
    read_model = open_read_model(url)
    yield Rooms(engine, read_model, Follower(engine.app, read_model, ACCOUNT_SID))
    read_model.db.close()


@dataclass
class Server:
    metrics: Metrics
    health: dict[str, object]
    session: aiohttp.ClientSession
    base: str
    fail_health: bool = False

    async def get(self, path: str) -> tuple[int, str, str]:
        async with self.session.get(self.base + path) as response:
            return response.status, response.headers["Content-Type"], await response.text()

    async def json(self, method: str, path: str) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, content_type, text = await self.get("/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@pytest.fixture
async def server(rooms: Rooms) -> AsyncIterator[Server]:
    metrics = Metrics(lambda: status_counts(rooms.read_model))
    health: dict[str, object] = {"status": "ok", "store": "ok", "nats": "connected"}

    async def report() -> dict[str, object]:
        if state.fail_health:
            raise RuntimeError("the health check itself broke")
        return dict(health)

    runner = await serve_http(build_app(metrics=metrics, health=report), "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        state = Server(metrics, health, session, f"http://{host}:{port}")
        yield state
    await runner.cleanup()


def twilio_error(code: int, status: int, message: str) -> dict[str, object]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


async def test_healthz_answers_200_when_healthy_and_503_with_the_same_report_when_not(server: Server) -> None:
    assert await server.json("GET", "/healthz") == (200, {"status": "ok", "store": "ok", "nats": "connected"})

    server.health.update(status="degraded", nats="disconnected")
    assert await server.json("GET", "/healthz") == (503, {"status": "degraded", "store": "ok", "nats": "disconnected"})


async def test_metrics_count_and_time_commands_by_name_and_outcome(server: Server, rooms: Rooms) -> None:
    execute = server.metrics.instrument(rooms.execute)
    assert (await execute(rooms.command(cmd.CreateRoom, unique_name="standup"))).ok
    refused = await execute(rooms.command(cmd.CreateRoom, unique_name="standup"))
    assert refused.error_code == 53113

    async def broken(command: cmd.Command) -> CommandResult:
        raise RuntimeError("the store is gone")

    with pytest.raises(RuntimeError):
        await server.metrics.instrument(broken)(rooms.command(cmd.CompleteRoom, room_sid="RM" + "0" * 32))
    server.metrics.observe_command("connect_participant", 0.002, "ok")

    samples = await server.samples()
    total = "openrooms_commands_total"
    assert samples[(total, frozenset({("command", "create_room"), ("outcome", "ok")}))] == 1
    assert samples[(total, frozenset({("command", "create_room"), ("outcome", "53113")}))] == 1
    assert samples[(total, frozenset({("command", "complete_room"), ("outcome", "error")}))] == 1
    assert samples[(total, frozenset({("command", "connect_participant"), ("outcome", "ok")}))] == 1
    count = "openrooms_command_seconds_count"
    assert samples[(count, frozenset({("command", "create_room")}))] == 2
    assert (
        samples[("openrooms_command_seconds_bucket", frozenset({("command", "connect_participant"), ("le", "0.0025")}))]
        == 1
    )
    assert (
        samples[("openrooms_command_seconds_bucket", frozenset({("command", "connect_participant"), ("le", "0.001")}))]
        == 0
    )


async def test_metrics_show_relay_and_read_model_lag(server: Server) -> None:
    server.metrics.relay_lag_events.set(7)
    server.metrics.read_model_lag_events.set(2)
    server.metrics.relay_ack_seconds.observe(0.004)

    samples = await server.samples()
    assert samples[("openrooms_relay_lag_events", frozenset())] == 7
    assert samples[("openrooms_read_model_lag_events", frozenset())] == 2
    assert samples[("openrooms_relay_ack_seconds_count", frozenset())] == 1
    assert samples[("openrooms_relay_ack_seconds_bucket", frozenset({("le", "0.005")}))] == 1


async def test_room_and_participant_gauges_count_the_read_model_by_status(server: Server, rooms: Rooms) -> None:
    async def ok(command_type: type[cmd.Command], **fields: Any) -> CommandResult:
        result = await rooms.execute(rooms.command(command_type, **fields))
        assert result.ok, result
        return result

    standup = (await ok(cmd.CreateRoom, unique_name="standup")).room_sid
    retro = (await ok(cmd.CreateRoom, unique_name="retro")).room_sid
    await ok(cmd.CreateRoom, unique_name="planning")
    assert standup and retro
    await ok(cmd.ConnectParticipant, room=standup, identity="alice")
    await ok(cmd.ConnectParticipant, room=standup, identity="bob")
    await ok(cmd.ConnectParticipant, room=retro, identity="carol")
    await ok(cmd.CompleteRoom, room_sid=retro)  # carol is disconnected with it
    await asyncio.to_thread(rooms.follower.catch_up)

    samples = await server.samples()
    assert {labels: value for (name, labels), value in samples.items() if name == "openrooms_rooms"} == {
        frozenset({("status", "in-progress")}): 2,
        frozenset({("status", "completed")}): 1,
        frozenset({("status", "failed")}): 0,
    }
    assert {labels: value for (name, labels), value in samples.items() if name == "openrooms_participants"} == {
        frozenset({("status", "connected")}): 2,
        frozenset({("status", "disconnected")}): 1,
    }


async def test_an_empty_read_model_reports_every_known_status_as_zero(server: Server) -> None:
    gauges = {
        "openrooms_rooms",
        "openrooms_participants",
        "openrooms_relay_lag_events",
        "openrooms_read_model_lag_events",
    }
    samples = await server.samples()
    assert {(name, labels): value for (name, labels), value in samples.items() if name in gauges} == {
        ("openrooms_rooms", frozenset({("status", "in-progress")})): 0,
        ("openrooms_rooms", frozenset({("status", "completed")})): 0,
        ("openrooms_rooms", frozenset({("status", "failed")})): 0,
        ("openrooms_participants", frozenset({("status", "connected")})): 0,
        ("openrooms_participants", frozenset({("status", "disconnected")})): 0,
        ("openrooms_relay_lag_events", frozenset()): 0,
        ("openrooms_read_model_lag_events", frozenset()): 0,
    }


async def test_unknown_routes_and_methods_answer_with_twilio_errors(server: Server) -> None:
    assert await server.json("GET", "/x") == (404, twilio_error(20404, 404, "The requested resource /x was not found"))
    assert await server.json("POST", "/healthz") == (
        405,
        twilio_error(20004, 405, "Method POST is not allowed on /healthz"),
    )


async def test_a_failing_handler_answers_500_in_twilio_shape_without_a_traceback(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.fail_health = True
    status, body = await server.json("GET", "/healthz")
    assert (status, body) == (500, twilio_error(20500, 500, "An internal server error occurred"))
    assert "Traceback" not in str(body)
    assert any("GET /healthz failed" in r.getMessage() and r.exc_info for r in caplog.records)
