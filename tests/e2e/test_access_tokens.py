"""Access tokens minted by the `twilio` library, checked by a running service over NATS.

Signaling front ends hold no key secrets: they ask `rooms.qry.verify_token`, which answers the
token's grant or Twilio's refusal code (20101-20107), and, given the room being joined,
whether the token's room grant allows it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

OPENROOMS = Path(sys.executable).with_name("openrooms")
REVOKE_WAIT = 10.0
"""Revokes take effect within the key cache's 2 s; this bound is never reached when things work."""


def verify(service: Any, token: str, room: str | None = None) -> dict[str, Any]:
    body = {"token": token} if room is None else {"token": token, "room": room}
    reply: dict[str, Any] = service.nats_request("rooms.qry.verify_token", body)
    return reply


def mint(service: Any, *, room: str | None = "standup", identity: str | None = "alice", **options: Any) -> str:
    c = service.credentials
    key, secret = options.pop("key", (c["api_key_sid"], c["api_key_secret"]))
    token = AccessToken(c["account_sid"], key, secret, identity=identity, **options)
    token.add_grant(VideoGrant(room=room) if room else VideoGrant())
    return str(token.to_jwt())


def refused_with(reply: dict[str, Any]) -> int:
    assert reply["ok"] is False, reply
    assert reply["error"]["status"] == 401
    return int(reply["error"]["code"])


def test_a_library_token_is_accepted_for_its_room_by_name_or_sid(running_service: Any, twilio_client: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="standup")
    token = mint(running_service)
    for target in (None, "standup", room.sid):
        reply = verify(running_service, token, target)
        assert reply["ok"], reply
        assert (reply["result"]["identity"], reply["result"]["room"]) == ("alice", "standup")
    open_token = mint(running_service, room=None)
    assert verify(running_service, open_token, "any-room")["ok"], "no room grant: every room"


def test_wrong_tampered_expired_early_and_foreign_tokens_are_refused_with_their_codes(running_service: Any) -> None:
    now = int(time.time())
    assert refused_with(verify(running_service, mint(running_service), "elsewhere")) == 20106
    header, payload, signature = mint(running_service).split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert refused_with(verify(running_service, f"{header}.{payload}.{flipped}")) == 20107
    assert refused_with(verify(running_service, "not.a.token")) == 20101
    assert refused_with(verify(running_service, mint(running_service, valid_until=now - 3600))) == 20104
    assert refused_with(verify(running_service, mint(running_service, nbf=now + 3600))) == 20105
    stranger = mint(running_service, key=("SK" + "5" * 32, "a-secret-this-service-never-issued-to-anyone"))
    assert refused_with(verify(running_service, stranger)) == 20103
    assert refused_with(verify(running_service, mint(running_service, identity=None))) == 20106


def test_a_token_signed_with_a_revoked_key_is_refused_soon_after(running_service: Any) -> None:
    state = ["--state-dir", str(running_service.state_dir)]
    created = subprocess.run([str(OPENROOMS), "keys", "create", "--name", "mobile", *state], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    fields = dict(line.split(" ", 1) for line in created.strip().splitlines())
    token = mint(running_service, key=(fields["sid"], fields["secret"]))
    assert verify(running_service, token)["ok"]
    subprocess.run([str(OPENROOMS), "keys", "revoke", fields["sid"], *state], check=True, capture_output=True)
    deadline = time.monotonic() + REVOKE_WAIT
    while (reply := verify(running_service, token))["ok"]:
        assert time.monotonic() < deadline, "the revoked key still works"
    assert refused_with(reply) == 20103
