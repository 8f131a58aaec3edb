"""Twilio access tokens: minted and verified here, pure (the time and the secrets come in).

A token is what `twilio.jwt.access_token.AccessToken` + `VideoGrant` produce (reference
twilio-video-api.md §6): an HS256 JWT signed with an API key secret,

    header  {"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"}
    payload {"jti": "<key sid>-<now>", "grants": {"video": {"room": ...}, "identity": ...},
             "iss": "<key sid>", "exp": now + ttl, "nbf": now, "sub": "<account sid>"}

`verify_token` checks, in order, and raises the first failure with its Twilio code:
structure (20101), header (20102), issuer and subject (20103), signature (20107), expiry
(20104), not-before (20105), grants (20106). A video grant is required: a token minted for
another Twilio product (Chat, Sync) does not enter rooms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeGuard

import jwt
import msgspec
from jwt.api_jws import PyJWS

from domain.errors import (
    AccessTokenExpiredError,
    AccessTokenGrantsInvalidError,
    AccessTokenHeaderInvalidError,
    AccessTokenInvalidError,
    AccessTokenIssuerInvalidError,
    AccessTokenNotYetValidError,
    AccessTokenSignatureInvalidError,
)

ALGORITHM: Final = "HS256"
CONTENT_TYPE: Final = "twilio-fpa;v=1"
MAX_TTL_SECONDS: Final = 24 * 3600
"""Twilio's ceiling on a token's lifetime (the longest session)."""
MAX_IDENTITY_LENGTH: Final = 128
MAX_TOKEN_LENGTH: Final = 16 * 1024
"""Longer is not a token a client should send (Twilio's are well under 1 KiB)."""
DEFAULT_LEEWAY_SECONDS: Final = 30
"""Clock skew allowed between the minter and this server, on `exp` and `nbf`."""

_UNVERIFIED: Final = PyJWS(options={"verify_signature": False})


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified token allows: who connects, to which room (None: any), until when."""

    identity: str
    room: str | None
    key_sid: str
    expires_at: int

    def allows_room(self, room_sid: str, unique_name: str | None) -> bool:
        """A room grant names the room by SID or unique name; no room grant allows every room."""
        return self.room is None or self.room == room_sid or (unique_name is not None and self.room == unique_name)


def mint_token(
    *,
    account_sid: str,
    key_sid: str,
    key_secret: str,
    identity: str,
    room: str | None = None,
    ttl: int = 3600,
    now: int,
) -> str:
    """A token byte for byte as the twilio library mints it at `now` (epoch seconds).

    Raises ValueError for an identity Twilio would refuse or a ttl outside 1..86400 seconds.
    """
    if not identity or len(identity) > MAX_IDENTITY_LENGTH:
        raise ValueError(f"identity must be 1..{MAX_IDENTITY_LENGTH} characters, got {len(identity)}")
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be 1..{MAX_TTL_SECONDS} seconds, got {ttl}")
    # Key order as twilio-python builds it, so the tokens are identical.
    payload = {
        "jti": f"{key_sid}-{now}",
        "grants": {"video": {"room": room} if room else {}, "identity": identity},
        "iss": key_sid,
        "exp": now + ttl,
        "nbf": now,
        "sub": account_sid,
    }
    return jwt.encode(payload, key_secret, algorithm=ALGORITHM, headers={"cty": CONTENT_TYPE})


def verify_token(
    token: str,
    *,
    account_sid: str,
    secret_of: Callable[[str], str | None],
    now: int,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
) -> Grant:
    """The grant of a valid token for `account_sid`; an AccessTokenError subclass otherwise.

    `secret_of(key_sid)` answers the secret of an active API key, or None.
    """
    header, claims, signing_input, signature = _decode(token)
    _check_header(header)
    key_sid = _check_issuer(claims, account_sid)
    secret = secret_of(key_sid)
    if secret is None:
        raise AccessTokenIssuerInvalidError(f"iss {key_sid} is not an active API key")
    expected = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise AccessTokenSignatureInvalidError(key_sid)
    expires_at = _check_times(claims, now, leeway)
    identity, room = _check_grants(claims.get("grants"))
    return Grant(identity=identity, room=room, key_sid=key_sid, expires_at=expires_at)


def _decode(token: object) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    if not isinstance(token, str) or token.count(".") != 2:
        raise AccessTokenInvalidError("not a JSON Web Token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise AccessTokenInvalidError(f"longer than {MAX_TOKEN_LENGTH} characters")
    try:
        parts = _UNVERIFIED.decode_complete(token)
        claims = json.loads(parts["payload"])
    except (jwt.PyJWTError, ValueError, RecursionError) as exc:  # json and unicode errors are ValueErrors
        raise AccessTokenInvalidError("not a JSON Web Token") from exc
    if not isinstance(claims, dict):
        raise AccessTokenInvalidError("the payload is not a JSON object")
    return parts["header"], claims, token.rpartition(".")[0].encode(), parts["signature"]


def _check_header(header: Mapping[str, Any]) -> None:
    if header.get("alg") != ALGORITHM:
        raise AccessTokenHeaderInvalidError(f"alg must be {ALGORITHM}, got {_short(header.get('alg'))}")
    if header.get("cty") != CONTENT_TYPE:
        raise AccessTokenHeaderInvalidError(f"cty must be {CONTENT_TYPE}, got {_short(header.get('cty'))}")
    if header.get("typ", "JWT") != "JWT":
        raise AccessTokenHeaderInvalidError(f"typ must be JWT, got {_short(header.get('typ'))}")


def _check_issuer(claims: Mapping[str, Any], account_sid: str) -> str:
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer:
        raise AccessTokenIssuerInvalidError("iss (the API key SID) is missing")
    if subject != account_sid:
        raise AccessTokenIssuerInvalidError(f"sub {_short(subject)} is not this account")
    return issuer


def _check_times(claims: Mapping[str, Any], now: int, leeway: int) -> int:
    expires_at, not_before = claims.get("exp"), claims.get("nbf")
    if not _is_int(expires_at):
        raise AccessTokenExpiredError("exp is missing or not an integer")
    if expires_at <= now - leeway:
        raise AccessTokenExpiredError(f"expired at {expires_at}, now {now}")
    if not_before is not None and not _is_int(not_before):
        raise AccessTokenNotYetValidError("nbf is not an integer")
    issued = now if not_before is None else not_before
    if expires_at - issued > MAX_TTL_SECONDS + (leeway if not_before is None else 0):
        raise AccessTokenExpiredError(f"lifetime {expires_at - issued} s is over {MAX_TTL_SECONDS} s")
    if not_before is not None and not_before > now + leeway:
        raise AccessTokenNotYetValidError(f"valid from {not_before}, now {now}")
    return expires_at


def _check_grants(grants: object) -> tuple[str, str | None]:
    if not isinstance(grants, dict):
        raise AccessTokenGrantsInvalidError("grants is missing or not an object")
    identity = grants.get("identity")
    if not isinstance(identity, str) or not identity:
        raise AccessTokenGrantsInvalidError("grants.identity is missing")
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise AccessTokenGrantsInvalidError(f"identity is longer than {MAX_IDENTITY_LENGTH} characters")
    video = grants.get("video")
    if not isinstance(video, dict):
        raise AccessTokenGrantsInvalidError("the video grant is missing or not an object")
    room = video.get("room")
    if room is not None and (not isinstance(room, str) or not room):
        raise AccessTokenGrantsInvalidError("grants.video.room is not a room name or SID")
    return identity, room


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: object) -> str:
    """A claim as it may appear in an error message: repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
