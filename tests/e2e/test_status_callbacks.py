"""Status callbacks from a running `openrooms serve` to an app's endpoint, validated the app's way.

The app's receiver is down when the rooms live (nothing listens on its port) and comes up
afterwards: every callback still arrives, in order per room, each signed so that the `twilio`
library's RequestValidator accepts it with the auth token. Retry delays are shortened through
the environment so the test waits a second, not minutes.
"""

from __future__ import annotations

import queue
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

WAIT = 30.0
FAST_RETRIES = {"OPENROOMS_WEBHOOK_RETRY_MIN_SECONDS": "0.05", "OPENROOMS_WEBHOOK_RETRY_MAX_SECONDS": "0.3"}


@dataclass
class Received:
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]


class Receiver:
    """An app's callback endpoint on a fixed port, started on demand."""

    def __init__(self) -> None:
        with socket.socket() as probe:  # a free port, left closed: "the receiver is down"
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.calls: queue.Queue[Received] = queue.Queue()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        calls, base = self.calls, self.base

        class Handler(BaseHTTPRequestHandler):
            def _record(self, body: str) -> None:
                query = urllib.parse.urlsplit(self.path).query
                pairs = urllib.parse.parse_qsl(body if self.command == "POST" else query, keep_blank_values=True)
                calls.put(Received(self.command, base + self.path, dict(pairs), dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def do_POST(self) -> None:
                self._record(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())

            def do_GET(self) -> None:
                self._record("")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self, count: int) -> list[Received]:
        return [self.calls.get(timeout=WAIT) for _ in range(count)]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def test_callbacks_wait_out_a_down_receiver_and_arrive_signed_complete_and_in_order_per_room(
    start: Callable[..., Any], tmp_path: Path, receiver: Receiver
) -> None:
    service = start(tmp_path / "state", env=FAST_RETRIES)
    try:
        rooms = service.client().video.v1.rooms
        post_room = rooms.create(unique_name="posted", status_callback=f"{receiver.base}/cb/post?app=1")
        get_room = rooms.create(
            unique_name="got", status_callback=f"{receiver.base}/cb/get", status_callback_method="GET"
        )
        for room in (post_room, get_room):
            alice = service.command(
                "connect_participant", command_id=uuid.uuid4().hex, room=room.sid, identity="alice",
                tracks=[{"name": "mic", "kind": "audio"}, {"name": "cam", "kind": "video"}],
            )  # fmt: skip
            service.command(
                "set_track_enabled", command_id=uuid.uuid4().hex, room_sid=room.sid, participant_sid=alice["sid"],
                track_sid=alice["published_track_sids"][1], enabled=False,
            )  # fmt: skip
            rooms(room.sid).participants(alice["sid"]).update(status="disconnected")
            rooms(room.sid).update(status="completed")
        assert receiver.calls.empty()
        receiver.start()  # the app's endpoint comes back

        expected = [
            "room-created", "participant-connected", "track-added", "track-added", "track-disabled",
            "track-removed", "track-removed", "participant-disconnected", "room-ended",
        ]  # fmt: skip
        got = receiver.take(2 * len(expected))
        validator = RequestValidator(service.credentials["auth_token"])
        by_room: dict[str, list[Received]] = {}
        for call in got:
            signature = call.headers["X-Twilio-Signature"]
            assert validator.validate(call.url, call.params if call.method == "POST" else {}, signature), call
            by_room.setdefault(call.params["RoomSid"], []).append(call)
        assert set(by_room) == {post_room.sid, get_room.sid}
        for room, method in ((post_room, "POST"), (get_room, "GET")):
            calls = by_room[room.sid]
            assert [c.params["StatusCallbackEvent"] for c in calls] == expected, "all of them, in the room's order"
            assert {c.method for c in calls} == {method}
            assert [int(c.params["SequenceNumber"]) for c in calls] == list(range(len(expected)))
            assert len({c.headers["I-Twilio-Idempotency-Token"] for c in calls}) == len(expected)
            first, connected, *_, ended = calls
            assert (first.params["RoomName"], first.params["RoomType"]) == (room.unique_name, "group")
            assert first.params["AccountSid"] == service.credentials["account_sid"]
            assert (connected.params["ParticipantIdentity"], connected.params["ParticipantStatus"]) == (
                "alice", "connected",
            )  # fmt: skip
            assert (ended.params["RoomStatus"], "RoomDuration" in ended.params) == ("completed", True)
        assert all(c.url.startswith(f"{receiver.base}/cb/post?app=1") for c in by_room[post_room.sid])
    finally:
        assert service.process.stop() == 0, service.process.stderr()
