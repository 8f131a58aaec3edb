"""A running `openrooms serve` shared by a test module, and the client an app would use on it.

* `running_service` (module): `openrooms serve` in a temporary state dir (its own bundled
  nats-server, SQLite store, generated credentials), stopped with SIGTERM at the end; its stderr
  must hold no traceback. `start` (tests/conftest.py) gives tests their own services.
* `twilio_client` (function): the official `twilio` helper library pointed at it the way
  docs/migration.md tells apps to (`client.video.base_url`), authenticated with the API key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twilio.rest import Client


@pytest.fixture(scope="module")
def running_service(start: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    service = start(tmp_path_factory.mktemp("service") / "state")
    yield service
    assert service.process.stop() == 0, service.process.stderr()
    assert "Traceback" not in service.process.stderr(), service.process.stderr()


@pytest.fixture
def twilio_client(running_service: Any) -> Client:
    client: Client = running_service.client()
    return client
