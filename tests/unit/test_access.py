"""Access tokens: minted as the twilio library mints them, verified with Twilio's 2010x codes.

Tokens come from domain/access.py and from the real `twilio` helper library (what an app's
server runs); every refusal is the AccessTokenError subclass and code a client SDK would see.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from unittest import mock

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant, VideoGrant

from domain.access import Grant, mint_token, verify_token
from domain.errors import (
    AccessTokenError,
    AccessTokenExpiredError,
    AccessTokenGrantsInvalidError,
    AccessTokenHeaderInvalidError,
    AccessTokenInvalidError,
    AccessTokenIssuerInvalidError,
    AccessTokenNotYetValidError,
    AccessTokenSignatureInvalidError,
    DomainError,
)

ACCOUNT = "AC" + "0" * 32
KEY = "SK" + "1" * 32
SECRET = "k" * 64  # long enough for HS512, so refusing that is about the header, not the key
OTHER_KEY = "SK" + "2" * 32
OTHER_SECRET = "o" * 64
NOW = 1_795_464_560
ROOM_SID = "RM" + "a" * 32
SECRETS = {KEY: SECRET, OTHER_KEY: OTHER_SECRET}


def verify(token: str, *, now: int = NOW, account_sid: str = ACCOUNT) -> Grant:
    return verify_token(token, account_sid=account_sid, secret_of=SECRETS.get, now=now)


def mint(**overrides: Any) -> str:
    fields: dict[str, Any] = {"account_sid": ACCOUNT, "key_sid": KEY, "key_secret": SECRET, "identity": "alice"}
    fields.update(overrides)
    return mint_token(now=fields.pop("now", NOW), **fields)


def twilio_token(identity: str | None = "alice", room: str | None = None, **kwargs: Any) -> str:
    token = AccessToken(ACCOUNT, KEY, SECRET, identity=identity, **kwargs)
    token.add_grant(VideoGrant(room=room))
    return str(token.to_jwt())


def signed(payload: dict[str, Any], *, headers: dict[str, Any] | None = None, algorithm: str = "HS256") -> str:
    """A token with exactly this payload, signed with the known key (for shapes twilio never mints)."""
    key = None if algorithm == "none" else SECRET
    return jwt.encode(payload, key, algorithm=algorithm, headers={"cty": "twilio-fpa;v=1", **(headers or {})})


def claims(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "jti": f"{KEY}-{NOW}",
        "grants": {"video": {}, "identity": "alice"},
        "iss": KEY,
        "exp": NOW + 3600,
        "nbf": NOW,
        "sub": ACCOUNT,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def refusal(token: str, **kwargs: Any) -> AccessTokenError:
    with pytest.raises(AccessTokenError) as caught:
        verify(token, **kwargs)
    return caught.value


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


# --- minting -------------------------------------------------------------------------------------


def test_a_token_minted_here_is_byte_for_byte_the_one_the_twilio_library_mints():
    with mock.patch("time.time", return_value=NOW + 0.4):
        theirs = twilio_token(room="DailyStandup", ttl=600)
    assert mint(room="DailyStandup", ttl=600) == theirs


def test_a_minted_token_has_twilios_header_and_claims():
    header, payload = segments(mint(room="DailyStandup"))
    assert header == {"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"}
    assert payload == {
        "jti": f"{KEY}-{NOW}",
        "grants": {"video": {"room": "DailyStandup"}, "identity": "alice"},
        "iss": KEY,
        "exp": NOW + 3600,
        "nbf": NOW,
        "sub": ACCOUNT,
    }


def test_a_token_without_a_room_carries_an_empty_video_grant():
    assert segments(mint())[1]["grants"] == {"video": {}, "identity": "alice"}


@pytest.mark.parametrize("ttl", [0, -1, 86_401])
def test_minting_refuses_a_ttl_outside_one_second_to_one_day(ttl):
    with pytest.raises(ValueError, match=r"ttl must be 1\.\.86400 seconds"):
        mint(ttl=ttl)


@pytest.mark.parametrize("identity", ["", "x" * 129])
def test_minting_refuses_an_identity_twilio_would_refuse(identity):
    with pytest.raises(ValueError, match=r"identity must be 1\.\.128 characters"):
        mint(identity=identity)


# --- accepting -----------------------------------------------------------------------------------


def test_a_token_from_the_twilio_library_gives_its_identity_room_key_and_expiry():
    now = int(time.time())
    grant = verify(twilio_token(identity="alice", room="DailyStandup", ttl=600), now=now)
    assert grant.identity == "alice"
    assert grant.room == "DailyStandup"
    assert grant.key_sid == KEY
    assert now + 599 <= grant.expires_at <= now + 601


def test_a_twilio_token_for_a_room_sid_allows_only_that_room():
    grant = verify(twilio_token(room=ROOM_SID), now=int(time.time()))
    assert grant.allows_room(ROOM_SID, "standup")
    assert not grant.allows_room("RM" + "b" * 32, "standup")


def test_a_token_without_a_room_allows_every_room():
    grant = verify(twilio_token(room=None), now=int(time.time()))
    assert grant.room is None
    assert grant.allows_room(ROOM_SID, "standup")
    assert grant.allows_room("RM" + "b" * 32, None)


def test_a_room_grant_matches_the_rooms_unique_name_or_its_sid():
    grant = verify(mint(room="standup"))
    assert grant.allows_room(ROOM_SID, "standup")
    assert not grant.allows_room(ROOM_SID, "retro")
    assert not grant.allows_room(ROOM_SID, None)


def test_a_token_signed_with_a_second_api_key_is_accepted_with_that_key():
    grant = verify(mint(key_sid=OTHER_KEY, key_secret=OTHER_SECRET))
    assert grant.key_sid == OTHER_KEY


def test_a_token_without_nbf_is_accepted():
    with mock.patch("time.time", return_value=NOW):
        token = twilio_token(nbf=None)
    assert "nbf" not in segments(token)[1]
    assert verify(token).identity == "alice"


def test_clocks_thirty_seconds_apart_still_agree():
    assert verify(mint(), now=NOW - 30).identity == "alice"
    assert verify(mint(ttl=60), now=NOW + 60 + 29).identity == "alice"


@settings(max_examples=200)
@given(
    identity=st.text(min_size=1, max_size=128),
    room=st.none() | st.text(min_size=1, max_size=200),
    ttl=st.integers(1, 86_400),
)
def test_any_identity_and_room_come_back_from_a_minted_token(identity, room, ttl):
    grant = verify(mint(identity=identity, room=room, ttl=ttl))
    assert (grant.identity, grant.room, grant.expires_at) == (identity, room, NOW + ttl)


@settings(max_examples=50, deadline=None)
@given(identity=st.text(min_size=1, max_size=128), room=st.none() | st.text(min_size=1, max_size=128))
def test_any_identity_and_room_come_back_from_a_twilio_library_token(identity, room):
    grant = verify(twilio_token(identity=identity, room=room), now=int(time.time()))
    assert (grant.identity, grant.room) == (identity, room)


# --- refusing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.!!!.c2ln", "x" * 20_000])
def test_what_is_not_a_jwt_is_an_invalid_token_20101(token):
    error = refusal(token)
    assert isinstance(error, AccessTokenInvalidError)
    assert (error.code, error.status) == (20101, 401)


def test_a_payload_that_is_not_a_json_object_is_an_invalid_token_20101():
    body = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    header = mint().split(".")[0]
    assert refusal(f"{header}.{body}.c2ln").code == 20101


@pytest.mark.parametrize("algorithm", ["HS512", "HS384", "none"])
def test_a_token_not_signed_with_hs256_has_an_invalid_header_20102(algorithm):
    error = refusal(signed(claims(), algorithm=algorithm))
    assert isinstance(error, AccessTokenHeaderInvalidError)
    assert error.code == 20102
    assert "alg must be HS256" in error.message


def test_a_jwt_that_is_not_a_twilio_access_token_has_an_invalid_header_20102():
    token = jwt.encode(claims(), SECRET, algorithm="HS256")  # no cty: twilio-fpa;v=1
    error = refusal(token)
    assert error.code == 20102
    assert "cty must be twilio-fpa;v=1" in error.message


def test_a_token_from_an_unknown_api_key_has_an_invalid_issuer_20103():
    error = refusal(mint(key_sid="SK" + "9" * 32, key_secret=SECRET))
    assert isinstance(error, AccessTokenIssuerInvalidError)
    assert error.code == 20103
    assert "SK" + "9" * 32 in error.message


def test_a_token_for_another_account_has_an_invalid_subject_20103():
    error = refusal(mint(account_sid="AC" + "f" * 32))
    assert error.code == 20103
    assert "is not this account" in error.message


def test_a_token_without_an_issuer_has_an_invalid_issuer_20103():
    assert refusal(signed(claims(iss=None))).code == 20103


def test_a_tampered_token_has_an_invalid_signature_20107():
    token = mint(room="standup")
    header, _, signature = token.split(".")
    _, payload = segments(token)
    payload["grants"]["video"]["room"] = "boardroom"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    error = refusal(f"{header}.{forged}.{signature}")
    assert isinstance(error, AccessTokenSignatureInvalidError)
    assert (error.code, error.status) == (20107, 401)


def test_a_token_signed_with_the_wrong_secret_has_an_invalid_signature_20107():
    error = refusal(mint(key_secret=OTHER_SECRET))
    assert error.code == 20107
    assert KEY in error.message
    assert OTHER_SECRET not in error.message and SECRET not in error.message


def test_an_expired_token_is_refused_with_20104():
    error = refusal(mint(ttl=60), now=NOW + 60 + 30)
    assert isinstance(error, AccessTokenExpiredError)
    assert error.code == 20104
    assert f"expired at {NOW + 60}" in error.message


def test_an_expired_twilio_library_token_is_refused_with_20104():
    with mock.patch("time.time", return_value=NOW - 7200):
        token = twilio_token(ttl=3600)
    assert refusal(token).code == 20104


@pytest.mark.parametrize("exp", [None, "tomorrow", 1.5e9, True])
def test_a_token_without_an_integer_expiry_is_refused_with_20104(exp):
    assert refusal(signed(claims(exp=exp))).code == 20104


def test_a_token_valid_for_more_than_a_day_is_refused_with_20104():
    error = refusal(signed(claims(exp=NOW + 86_401)))
    assert error.code == 20104
    assert "over 86400 s" in error.message


def test_a_token_without_nbf_expiring_more_than_a_day_from_now_is_refused_with_20104():
    assert refusal(signed(claims(nbf=None, exp=NOW + 86_400 + 31))).code == 20104


def test_a_token_used_before_its_nbf_is_refused_with_20105():
    error = refusal(mint(now=NOW + 31))
    assert isinstance(error, AccessTokenNotYetValidError)
    assert error.code == 20105
    assert f"valid from {NOW + 31}" in error.message


def test_a_token_with_a_non_integer_nbf_is_refused_with_20105():
    assert refusal(signed(claims(nbf="now"))).code == 20105


def test_a_twilio_token_without_identity_has_invalid_grants_20106():
    error = refusal(twilio_token(identity=None), now=int(time.time()))
    assert isinstance(error, AccessTokenGrantsInvalidError)
    assert error.code == 20106
    assert "identity is missing" in error.message


def test_a_twilio_token_without_a_video_grant_has_invalid_grants_20106():
    token = AccessToken(ACCOUNT, KEY, SECRET, identity="alice", grants=[ChatGrant(service_sid="IS" + "0" * 32)])
    error = refusal(str(token.to_jwt()), now=int(time.time()))
    assert error.code == 20106
    assert "video grant" in error.message


@pytest.mark.parametrize(
    ("grants", "explanation"),
    [
        ({"video": {}, "identity": "x" * 129}, "longer than 128"),
        ({"video": {}, "identity": 42}, "identity is missing"),
        ({"video": {}, "identity": ""}, "identity is missing"),
        ({"video": "standup", "identity": "alice"}, "video grant"),
        ({"video": {"room": 7}, "identity": "alice"}, "room"),
        ({"video": {"room": ""}, "identity": "alice"}, "room"),
        ("alice", "grants is missing"),
    ],
)
def test_malformed_grants_are_refused_with_20106(grants, explanation):
    error = refusal(signed(claims(grants=grants)))
    assert error.code == 20106
    assert explanation in error.message


def test_every_refusal_is_a_domain_error_answered_with_http_401():
    for error in (refusal("abc"), refusal(mint(key_secret=OTHER_SECRET)), refusal(mint(now=NOW - 90_000))):
        assert isinstance(error, DomainError)
        assert error.status == 401
        assert error.message == str(error)


@settings(max_examples=300)
@given(st.text(max_size=300) | st.from_regex(r"\A[A-Za-z0-9_\-]{0,60}\.[A-Za-z0-9_\-]{0,60}\.[A-Za-z0-9_\-]{0,60}\Z"))
def test_any_string_is_either_a_grant_or_an_access_token_error(text):
    with pytest.raises(AccessTokenError):
        verify(text)
