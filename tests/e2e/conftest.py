"""A running `openrooms serve` shared by a test module, and the clients an app would use on it.

* `running_service` (module): `openrooms serve` in a temporary state dir (its own bundled
  nats-server, SQLite store, generated credentials), stopped with SIGTERM at the end.
* `start` (session): `start(state_dir, *serve_args)` for tests that need their own service.
* `twilio_client` (function): the official `twilio` helper library pointed at it the way
  docs/migration.md tells apps to (`client.video.base_url`), authenticated with the API key.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from twilio.rest import Client

NATS_TIMEOUT = 10.0


@dataclass
class RunningService:
    state_dir: Path
    base_url: str
    credentials: dict[str, str]
    nats_url: str
    process: Any

    def client(self, username: str | None = None, password: str | None = None) -> Client:
        c = self.credentials
        client = Client(username or c["api_key_sid"], password or c["api_key_secret"], account_sid=c["account_sid"])
        client.video.base_url = self.base_url
        return client

    def command(self, name: str, **body: Any) -> dict[str, Any]:
        """Send `rooms.cmd.<name>` as the media plane will (participants, tracks, recordings)."""
        return asyncio.run(_request(self.nats_url, f"rooms.cmd.{name}", body))


async def _request(url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    nc = await nats.connect(url)
    try:
        reply = await nc.request(subject, json.dumps(body).encode(), timeout=NATS_TIMEOUT)
    finally:
        await nc.close()
    decoded: dict[str, Any] = json.loads(reply.data)
    assert decoded["ok"] is True, decoded
    result: dict[str, Any] = decoded["result"]
    return result


def start_service(
    serve: Callable[..., Any], state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> RunningService:
    process = serve(state_dir, *args, env=env)
    line = process.wait_for("openrooms: HTTP ")
    base = re.search(r"(http://\S+?:\d+)", line)
    assert base is not None, line
    process.wait_for("engine running")
    credentials = json.loads((state_dir / "credentials.json").read_text())
    nats_file = state_dir / "nats.url"  # written by the process that runs the bundled nats-server
    nats_url = nats_file.read_text().strip() if nats_file.exists() else ""
    return RunningService(state_dir, base.group(1), credentials, nats_url, process)


@pytest.fixture(scope="session")
def start(serve: Callable[..., Any]) -> Callable[..., RunningService]:
    """`start(state_dir, *serve_args, env=None)`: a RunningService; stop it with `.process.stop()` (killed at
    the end)."""
    return lambda state_dir, *args, env=None: start_service(serve, state_dir, *args, env=env)


@pytest.fixture(scope="module")
def running_service(serve: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    state = tmp_path_factory.mktemp("service") / "state"
    service = start_service(serve, state)
    yield service
    assert service.process.stop() == 0, service.process.stderr()
    assert "Traceback" not in service.process.stderr(), service.process.stderr()


@pytest.fixture
def twilio_client(running_service: RunningService) -> Client:
    return running_service.client()
