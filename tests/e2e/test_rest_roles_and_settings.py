"""Account settings from the command line, `/v1` served by an HTTP-only process, and the rate limit.

* The Console's client-side room creation settings are `openrooms serve` flags: the type,
  status callback and recording of ad-hoc rooms, or no ad-hoc rooms at all (53103).
* `--role http` on the same NATS and store serves the same `/v1` API, sending the engine's
  commands and queries over NATS: a room made through one process is seen through the other.
  Every process of a deployment gets the same `--public-url` (the address apps use).
* `--rate-limit` answers Twilio's 429 (20429) with Retry-After once a credential goes over it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

NATS_TIMEOUT = 10.0


def connect(service: Any, room: str, identity: str) -> dict[str, Any]:
    """The reply envelope of a connect over NATS, refused or not."""
    body = {"command_id": uuid.uuid4().hex, "room": room, "identity": identity}
    reply: dict[str, Any] = service.nats_request("rooms.cmd.connect_participant", body)
    return reply


def test_ad_hoc_rooms_take_the_account_defaults_given_on_the_command_line(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    service = start(
        tmp_path / "state", "--default-room-type", "peer-to-peer",
        "--default-status-callback", "https://cb.example/adhoc", "--default-status-callback-method", "GET",
    )  # fmt: skip
    try:
        joined = connect(service, "hallway", "alice")
        assert joined["ok"], joined
        room = service.client().video.v1.rooms("hallway").fetch()
        assert (room.type, room.status_callback, room.status_callback_method) == (
            "peer-to-peer", "https://cb.example/adhoc", "GET",
        )  # fmt: skip
        assert room.sid == joined["result"]["room_sid"]
    finally:
        assert service.process.stop() == 0, service.process.stderr()


def test_with_client_room_creation_off_only_rest_rooms_can_be_joined(start: Callable[..., Any], tmp_path: Path) -> None:
    service = start(tmp_path / "state", "--client-room-creation", "false")
    try:
        refused = connect(service, "hallway", "alice")
        assert (refused["ok"], refused["error"]["code"]) == (False, 53103)
        service.client().video.v1.rooms.create(unique_name="planned")
        assert connect(service, "planned", "alice")["ok"]
    finally:
        assert service.process.stop() == 0, service.process.stderr()


def test_an_http_only_process_serves_the_same_rooms_over_nats_and_applies_the_rate_limit(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    public = "https://rooms.example.test"  # the load balancer in front of both, as docs/operations.md says
    engine = start(state, "--public-url", public)
    front = None
    try:
        front = start(state, "--role", "http", "--nats", engine.nats_url, "--rate-limit", "3", "--public-url", public)
        assert front.base_url != engine.base_url
        made = front.client().video.v1.rooms.create(unique_name="via-front")
        assert made.url == f"{public}/v1/Rooms/{made.sid}"
        assert engine.client().video.v1.rooms("via-front").fetch().sid == made.sid
        assert front.client().video.v1.rooms(made.sid).fetch().sid == made.sid, "read-your-writes across processes"
        with pytest.raises(TwilioRestException) as limited:
            for _ in range(10):
                front.client().video.v1.rooms(made.sid).fetch()
        assert (limited.value.status, limited.value.code) == (429, 20429)
        other = front.client(engine.credentials["account_sid"], engine.credentials["auth_token"])
        assert other.video.v1.rooms(made.sid).fetch().sid == made.sid, "the limit is per credential"
    finally:
        if front is not None:
            assert front.process.stop() == 0, front.process.stderr()
        assert engine.process.stop() == 0, engine.process.stderr()
