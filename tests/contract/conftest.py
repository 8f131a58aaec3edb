"""A running `openrooms serve` for the contract tests, and real resources on it.

* `service` (module): `openrooms serve` in a temporary state dir, stopped with SIGTERM at the end;
  its stderr must hold no traceback.
* `Service.room()`, `.connect()`, `.recordings()`: rooms through the REST API, participants,
  tracks and recordings over NATS the way the media plane puts them in place (`rooms.cmd.*`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

NATS_TIMEOUT = 10.0
AUDIO_AND_VIDEO = [{"name": "mic", "kind": "audio"}, {"name": "cam", "kind": "video"}]


class Service:
    """Real resources on a running service (tests/conftest.py RunningService)."""

    def __init__(self, running: Any) -> None:
        self.running = running
        self.base_url: str = running.base_url
        self.auth: tuple[str, str] = running.auth
        self.process = running.process
        self.request = running.request
        self.command = running.command

    def room(self, **form: str) -> str:
        """A new in-progress room created through the API; its SID."""
        response = self.request("POST", "/v1/Rooms", data=form)
        assert response.status_code == 201, response.text
        sid: str = response.json()["sid"]
        return sid

    def complete(self, room: str) -> None:
        response = self.request("POST", f"/v1/Rooms/{room}", data={"Status": "completed"})
        assert response.status_code == 202, response.text

    def connect(self, room: str, identity: str, tracks: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """A participant connected with `tracks` (mic and cam by default); its resource and
        `published_track_sids`."""
        tracks = AUDIO_AND_VIDEO if tracks is None else tracks
        return self.command("connect_participant", room=room, identity=identity, tracks=tracks)

    def recordings(self, room: str, *, completed: bool) -> list[str]:
        """Recording rules that record everything in `room`; the SIDs of the recordings started.
        With `completed`, each is reported started and completed, so it can be deleted."""
        include_all = '[{"type": "include", "all": true}]'
        response = self.request("POST", f"/v1/Rooms/{room}/RecordingRules", data={"Rules": include_all})
        assert response.status_code == 200, response.text
        listed = self.request("GET", f"/v1/Rooms/{room}/Recordings", params={"PageSize": "100"})
        assert listed.status_code == 200, listed.text
        sids = [r["sid"] for r in listed.json()["recordings"]]
        assert sids, "recording rules that include everything start a recording per track"
        for sid in sids if completed else ():
            self.command("report_recording_started", room_sid=room, recording_sid=sid)
            self.command(
                "report_recording_completed", room_sid=room, recording_sid=sid, size=1234, duration=5,
                media_location=f"https://media.example/{sid}.mka",
            )  # fmt: skip
        return sids


@pytest.fixture(scope="module")
def service(start: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start(tmp_path_factory.mktemp("contract") / "state")
    yield Service(running)
    assert running.process.stop() == 0, running.process.stderr()[-4000:]
    stderr = running.process.stderr()
    assert "Traceback" not in stderr, stderr[max(0, stderr.index("Traceback") - 200) :][:4000]
