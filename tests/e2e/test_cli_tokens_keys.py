"""`openrooms token` and `openrooms keys` as a user runs them: the installed command, in a
subprocess, with nothing in its environment but PATH, on a state directory of its own.

The tokens it prints are checked the way the service checks them: verify_token with a KeyRing
over the credentials and the key store of that state directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.config import load_config
from adapters.keyring import KeyRing
from adapters.store.api_keys import ApiKeys
from adapters.store.sql import Database
from adapters.store.url import parse_store_url
from domain.access import Grant, verify_token
from domain.errors import AccessTokenIssuerInvalidError

OPENROOMS = Path(sys.executable).with_name("openrooms")
TIMEOUT = 30.0


def openrooms(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPENROOMS), *args, "--state-dir", "state"],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def credentials(cwd: Path) -> dict[str, str]:
    return json.loads((cwd / "state" / "credentials.json").read_text())


def check(token: str, cwd: Path) -> Grant:
    """The grant the service would give this token, with the keys the state directory holds now."""
    config = load_config(state_dir=str(cwd / "state"), env={})
    keys = ApiKeys(Database.from_url(parse_store_url(config.store_url).read_model_url()))
    ring = KeyRing(config.credentials, keys, time.monotonic, ttl_seconds=0)
    try:
        return verify_token(
            token, account_sid=config.credentials.account_sid, secret_of=ring.secret_of, now=int(time.time())
        )
    finally:
        ring.close()


def test_token_prints_one_token_for_the_identity_and_room_signed_with_the_primary_key(tmp_path):
    done = openrooms("token", "--identity", "alice", "--room", "standup", "--ttl", "600", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    grant = check(lines[0], tmp_path)
    assert (grant.identity, grant.room, grant.key_sid) == ("alice", "standup", credentials(tmp_path)["api_key_sid"])
    assert 590 <= grant.expires_at - time.time() <= 600
    assert "generated credentials kept in" in done.stderr


def test_token_without_a_room_allows_any_room(tmp_path):
    done = openrooms("token", "--identity", "bob", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    grant = check(done.stdout.strip(), tmp_path)
    assert grant.room is None and grant.allows_room("RM" + "a" * 32, "anything")


def test_token_refuses_a_ttl_over_a_day_with_a_message_and_no_token(tmp_path):
    done = openrooms("token", "--identity", "alice", "--ttl", "90000", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "ttl must be 1..86400 seconds, got 90000" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_created_key_signs_tokens_until_it_is_revoked(tmp_path):
    created = openrooms("keys", "create", "--name", "mobile app", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(" ", 1) for line in created.stdout.splitlines())
    sid, secret = fields["sid"], fields["secret"]
    assert sid.startswith("SK") and len(sid) == 34
    assert "shown only this once" in created.stderr

    signed = openrooms("token", "--identity", "carol", "--key", sid, cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    assert check(signed.stdout.strip(), tmp_path).key_sid == sid

    listed = openrooms("keys", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(sid))
    assert row.split()[1] == "active" and row.endswith("mobile app")
    assert secret not in listed.stdout
    assert any(line.split()[1] == "primary" for line in listed.stdout.splitlines()[1:])

    revoked = openrooms("keys", "revoke", sid, cwd=tmp_path)
    assert (revoked.returncode, revoked.stdout.strip()) == (0, f"revoked {sid}")
    after = openrooms("keys", "list", cwd=tmp_path)
    assert next(line for line in after.stdout.splitlines() if line.startswith(sid)).split()[1] == "revoked"

    refused = openrooms("token", "--identity", "carol", "--key", sid, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert f"no active API key {sid}" in refused.stderr

    with pytest.raises(AccessTokenIssuerInvalidError, match=f"iss {sid} is not an active API key"):
        check(signed.stdout.strip(), tmp_path)  # issued before the revoke, refused after it


def test_revoking_an_unknown_key_exits_1_and_says_so(tmp_path):
    unknown = "SK" + "0" * 32
    done = openrooms("keys", "revoke", unknown, cwd=tmp_path)
    assert done.returncode == 1
    assert f"cannot revoke {unknown}: it is not a key in the store" in done.stderr
    assert "Traceback" not in done.stderr


def test_revoking_a_key_twice_says_it_is_already_revoked(tmp_path):
    sid = openrooms("keys", "create", cwd=tmp_path).stdout.split()[1]
    assert openrooms("keys", "revoke", sid, cwd=tmp_path).returncode == 0
    again = openrooms("keys", "revoke", sid, cwd=tmp_path)
    assert again.returncode == 1
    assert f"cannot revoke {sid}: it is already revoked" in again.stderr


def test_the_primary_key_cannot_be_revoked_from_the_command_line(tmp_path):
    openrooms("keys", "list", cwd=tmp_path)
    primary = credentials(tmp_path)["api_key_sid"]
    done = openrooms("keys", "revoke", primary, cwd=tmp_path)
    assert done.returncode == 1
    assert "is the primary key from the credentials" in done.stderr
