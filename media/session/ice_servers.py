"""The STUN and TURN servers handed to clients in `iced`, with time-limited TURN credentials.

Peer-to-peer and go rooms send media browser to browser; the SDK asks for ICE servers once, at
connect (`{type: 'ice'}` → `{type: 'iced', ice_servers: [...]}`, never on reconnect), so the
credentials must last a whole session.

TURN credentials follow coturn's TURN REST API (`use-auth-secret` with `static-auth-secret`, from
draft-uberti-behave-turn-rest): the server and the TURN server share one secret and no user
database. For a participant `identity`, valid until the unix time `expiry`:

    username   = f"{expiry}:{identity}"
    credential = base64(HMAC-SHA1(key=secret, msg=username))

coturn recomputes the credential from the username and refuses it (401) once `expiry` has passed.
The identity in the username lets the TURN server's logs and quotas name the participant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from media.signaling.messages import IceServer

DEFAULT_TTL_S = 24 * 3600
"""A day: `iced` is asked once per session, so the credentials must outlive any call."""
MIN_TTL_S = 60
MAX_TTL_S = 7 * 24 * 3600
STUN_SCHEMES = ("stun:", "stuns:")
TURN_SCHEMES = ("turn:", "turns:")


@dataclass(frozen=True)
class IceServerSettings:
    """Where clients find STUN and TURN, and the secret shared with the TURN server (coturn's
    `static-auth-secret`). TURN URLs without a secret are refused: clients could not use them."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        _check_schemes("STUN", self.stun_urls, STUN_SCHEMES)
        _check_schemes("TURN", self.turn_urls, TURN_SCHEMES)
        if self.turn_urls and not self.turn_secret:
            raise ValueError(
                "TURN URLs need the TURN server's shared secret (coturn's static-auth-secret) "
                "to make credentials; none was given"
            )
        if not MIN_TTL_S <= self.ttl_s <= MAX_TTL_S:
            raise ValueError(f"the TURN credential lifetime must be {MIN_TTL_S}..{MAX_TTL_S} seconds, got {self.ttl_s}")


def _check_schemes(kind: str, urls: tuple[str, ...], schemes: tuple[str, ...]) -> None:
    for url in urls:
        if not url.startswith(schemes):
            raise ValueError(f"{kind} URL {url!r} must start with {' or '.join(schemes)}")


def ice_servers(settings: IceServerSettings, identity: str, now: float) -> list[IceServer]:
    """The `iced` servers for `identity` at unix time `now`: STUN (if any), then TURN (if any)
    with credentials that expire `settings.ttl_s` seconds from `now`."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append(IceServer(urls=list(settings.stun_urls)))
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(settings.turn_secret, identity, expiry=int(now) + settings.ttl_s)
        servers.append(IceServer(urls=list(settings.turn_urls), username=username, credential=credential))
    return servers


def turn_credentials(secret: str, identity: str, expiry: int) -> tuple[str, str]:
    """coturn's TURN REST API username and password for `identity`, valid until unix time `expiry`."""
    username = f"{expiry}:{identity}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")
