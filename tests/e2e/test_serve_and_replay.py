"""`openrooms serve` and `openrooms replay` as a user runs them: the installed command, in a
subprocess, with nothing in its environment but PATH.

Commands are driven through an engine service built in-process on the same state directory
while no server runs on it (HTTP and NATS do not exist yet; `serve` runs only the engine).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.bootstrap import build_engine_service
from adapters.config import load_config
from domain import commands as cmd
from domain.results import CommandResult

OPENROOMS = Path(sys.executable).with_name("openrooms")
TIMEOUT = 30.0
"""Generous: a cold interpreter imports the whole stack. Never reached when things work."""


def user_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def openrooms(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPENROOMS), *args],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def serve_once(serve: Callable[..., Any], state_dir: Path) -> list[str]:
    """Start a server, wait until the engine runs, stop it; its stdout lines."""
    server = serve(state_dir)
    try:
        server.wait_for("engine running")
        code = server.stop()
    finally:
        server.kill()
    assert code == 0, f"exit code {code}\n{server.stderr()}"
    assert "Traceback" not in server.stderr(), server.stderr()
    return server.lines


@dataclass
class Day:
    standup: str
    retro: str
    alice: str
    bob: str


def drive(state_dir: Path) -> Day:
    """A morning of commands through an in-process engine service on `state_dir`."""

    async def run() -> Day:
        service = build_engine_service(load_config(state_dir=str(state_dir), env={}))
        stopping = asyncio.Event()
        task = asyncio.create_task(service.run(stopping))

        async def ok(command: cmd.Command) -> CommandResult:
            result = await asyncio.wait_for(service.bus.execute(command), TIMEOUT)
            assert result.ok, result
            return result

        try:
            standup = str((await ok(cmd.CreateRoom(command_id="c1", unique_name="standup"))).room_sid)
            retro = str((await ok(cmd.CreateRoom(command_id="c2", unique_name="retro"))).room_sid)
            mic = cmd.TrackSpec(name="mic", kind="audio")
            alice = await ok(cmd.ConnectParticipant(command_id="c3", room="standup", identity="alice", tracks=[mic]))
            bob = await ok(cmd.ConnectParticipant(command_id="c4", room="standup", identity="bob"))
            await ok(cmd.DisconnectParticipant(command_id="c5", room_sid=standup, participant_sid="bob"))
            await ok(cmd.ConnectParticipant(command_id="c6", room="retro", identity="carol"))
            await ok(cmd.CompleteRoom(command_id="c7", room_sid="retro"))
        finally:
            stopping.set()
            await asyncio.wait_for(task, TIMEOUT)
            service.close()
        return Day(standup, retro, str(alice.participant_sid), str(bob.participant_sid))

    return asyncio.run(run())


# --- serve -------------------------------------------------------------------------------------


def test_serve_runs_the_engine_until_sigterm_and_then_exits_0(tmp_path: Path, serve: Callable[..., Any]) -> None:
    lines = serve_once(serve, tmp_path / "state")

    assert any("engine running" in line for line in lines)
    assert lines[-1] == "openrooms: stopped"


def test_credentials_are_generated_once_and_kept_across_restarts(tmp_path: Path, serve: Callable[..., Any]) -> None:
    state = tmp_path / "state"
    first = serve_once(serve, state)
    credentials = state / "credentials.json"
    stored = json.loads(credentials.read_text())
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stored["account_sid"].startswith("AC") and stored["api_key_sid"].startswith("SK")
    assert f"openrooms: account SID {stored['account_sid']}" in first
    assert f"openrooms: API key SID {stored['api_key_sid']}" in first
    assert f"openrooms: generated credentials kept in {credentials}:" in first
    assert f"openrooms:   API key secret {stored['api_key_secret']}" in first
    assert f"openrooms:   auth token {stored['auth_token']}" in first

    second = serve_once(serve, state)
    assert json.loads(credentials.read_text()) == stored
    assert f"openrooms: account SID {stored['account_sid']}" in second
    assert not any("generated credentials" in line for line in second)
    assert not any(stored["api_key_secret"] in line or stored["auth_token"] in line for line in second)


def test_serve_starts_on_a_state_dir_with_history_and_leaves_it_consistent(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    state = tmp_path / "state"
    drive(state)
    serve_once(serve, state)

    verified = openrooms("replay", "--state-dir", str(state), "--verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == "consistent"


# --- replay --verify ---------------------------------------------------------------------------


def test_replay_verify_says_consistent_and_reports_a_tampered_read_model(tmp_path: Path) -> None:
    state = tmp_path / "state"
    day = drive(state)

    clean = openrooms("replay", "--state-dir", str(state), "--verify", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines()[0].startswith("replayed ")
    assert clean.stdout.splitlines()[-1] == "consistent"

    with sqlite3.connect(state / "openrooms-readmodel.db") as db:
        changed = db.execute("UPDATE rm_participants SET status = 'connected' WHERE sid = ?", (day.bob,)).rowcount
    assert changed == 1
    tampered = openrooms("replay", "--state-dir", str(state), "--verify", cwd=tmp_path)
    assert tampered.returncode == 1
    report = tampered.stdout.splitlines()
    assert report[-1] == "NOT consistent"
    differs = [line for line in report if line.startswith("read model differs:")]
    assert len(differs) == 1, report
    assert day.bob in differs[0] and "participants" in differs[0]
    assert "'status': ('disconnected', 'connected')" in differs[0]

    with sqlite3.connect(state / "openrooms-readmodel.db") as db:
        db.execute("UPDATE rm_participants SET status = 'disconnected' WHERE sid = ?", (day.bob,))
        db.execute("DELETE FROM rm_rooms WHERE sid = ?", (day.retro,))
    deleted = openrooms("replay", "--state-dir", str(state), "--verify", "--json", cwd=tmp_path)
    assert deleted.returncode == 1
    body = json.loads(deleted.stdout)
    assert body["consistent"] is False and body["problems"] == []
    assert body["differences"] == [f"rooms['{day.retro}']: missing from the stored read model"]


# --- replay timeline ---------------------------------------------------------------------------


def test_replay_json_prints_one_object_per_event_with_its_position(tmp_path: Path) -> None:
    state = tmp_path / "state"
    day = drive(state)

    shown = openrooms("replay", "--state-dir", str(state), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert events[0]["event"] == "room_created" and events[0]["originator_id"] == day.standup
    assert [e["event"] for e in events if e["originator_id"] == day.retro][-1] == "room_ended"
    joined = [e for e in events if e["event"] == "participant_connected"]
    assert [(e["identity"], e["participant_sid"]) for e in joined[:2]] == [("alice", day.alice), ("bob", day.bob)]


def test_replay_room_prints_only_that_rooms_events(tmp_path: Path) -> None:
    state = tmp_path / "state"
    day = drive(state)

    everything = [
        json.loads(line)
        for line in openrooms("replay", "--state-dir", str(state), "--json", cwd=tmp_path).stdout.splitlines()
    ]
    only = openrooms("replay", "--state-dir", str(state), "--json", "--room", day.retro, cwd=tmp_path)
    assert only.returncode == 0, only.stderr
    retro = [json.loads(line) for line in only.stdout.splitlines()]

    about_retro = [e for e in everything if day.retro in (e["originator_id"], e.get("room_sid"))]
    assert retro == about_retro
    assert {e["event"] for e in retro} >= {"room_created", "room_name_claimed", "participant_connected", "room_ended"}

    text = openrooms("replay", "--state-dir", str(state), "--room", day.retro, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == len(retro)
    assert all(day.retro in line for line in lines)
    assert not any(day.standup in line for line in lines)
