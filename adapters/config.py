"""Configuration: flags, then `OPENROOMS_*` environment variables, then embedded defaults.

This is the only module that reads `os.environ`. Credentials that are not given are generated
once and kept in the state directory (`credentials.json`, mode 0600), so a restart keeps them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.settings import AccountPolicy
from media.session.ice_servers import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S, IceServerSettings

DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_STATE_DIR = ".openrooms"
ROLES = ("engine", "http", "media", "all")
ROOM_TYPES = ("group", "group-small", "peer-to-peer", "go")
FLAG_SETTINGS = {
    "client_room_creation": "OPENROOMS_CLIENT_ROOM_CREATION",
    "default_room_type": "OPENROOMS_DEFAULT_ROOM_TYPE",
    "default_status_callback": "OPENROOMS_DEFAULT_STATUS_CALLBACK",
    "default_status_callback_method": "OPENROOMS_DEFAULT_STATUS_CALLBACK_METHOD",
    "record_participants_on_connect": "OPENROOMS_RECORD_PARTICIPANTS_ON_CONNECT",
    "rate_limit": "OPENROOMS_RATE_LIMIT",
    "access_log": "OPENROOMS_ACCESS_LOG",
    "dev": "OPENROOMS_DEV",
    "sdk_dir": "OPENROOMS_SDK_DIR",
}
"""`openrooms serve` flags (argparse dest) → the environment variable each one overrides."""


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str
    api_key_sid: str
    api_key_secret: str
    generated: bool = False


@dataclass(frozen=True)
class Config:
    state_dir: Path
    store_url: str
    http: str
    nats_url: str | None
    public_url: str | None
    """Base of the absolute URLs in responses; None: the HTTP address actually bound."""
    role: str
    credentials: Credentials
    policy: AccountPolicy
    stream_replicas: int = 1
    stream_retention: str = "limits"
    stream_max_age_seconds: float = 7 * 24 * 3600
    rate_limit: float = 0.0
    """`/v1` requests per second per credential (0: unlimited); over it, 429 with code 20429."""
    webhook_timeout_seconds: float = 15.0
    webhook_retry_min_seconds: float = 1.0
    webhook_retry_max_seconds: float = 60.0
    webhook_give_up_seconds: float = 4 * 3600
    webhook_max_in_flight: int = 32
    access_log: bool = False
    """Log every HTTP request (aiohttp's access log, at INFO)."""
    media_ice_hosts: tuple[str, ...] = ()
    """`OPENROOMS_MEDIA_ICE_HOSTS`: the IP addresses the SFU offers as ICE host candidates (comma-separated;
    `127.0.0.1` for a single-machine setup). Empty: every non-loopback interface (aioice's choice)."""
    dev: bool = False
    """`OPENROOMS_DEV`: `POST /dev/token` mints access tokens for anyone (the demo page at `/`); never in production."""
    sdk_dir: Path | None = None
    """`OPENROOMS_SDK_DIR`: the twilio-video `dist` directory the demo page's `/sdk/twilio-video.min.js` comes
    from; by default `<state dir>/sdk/node_modules/twilio-video/dist` (`npm install --prefix <state dir>/sdk`)."""
    stun_urls: tuple[str, ...] = ()
    """`OPENROOMS_STUN_URLS`: STUN servers for peer-to-peer and go rooms (comma-separated `stun:host:port`)."""
    turn_urls: tuple[str, ...] = ()
    """`OPENROOMS_TURN_URLS`: TURN servers for peer-to-peer and go rooms (comma-separated `turn:`/`turns:` URLs);
    they need `turn_secret`."""
    turn_secret: str | None = field(default=None, repr=False)
    """`OPENROOMS_TURN_SECRET`: the secret shared with the TURN server (coturn's `static-auth-secret`)."""
    turn_ttl_seconds: int = DEFAULT_TTL_S
    """`OPENROOMS_TURN_TTL`: how long handed-out TURN credentials stay valid, in seconds (60..604800; default a
    day, since clients ask once per session: docs/turn.md)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def ice_server_settings(self) -> IceServerSettings:
        """The STUN/TURN servers and credential settings that signaling hands out in `iced`."""
        return IceServerSettings(
            stun_urls=self.stun_urls,
            turn_urls=self.turn_urls,
            turn_secret=self.turn_secret,
            ttl_s=self.turn_ttl_seconds,
        )


def _pick(flag: Any, env: Mapping[str, str], name: str, default: Any = None) -> Any:
    if flag is not None:
        return flag
    value = env.get(name)
    return value if value not in (None, "") else default


def _bool(value: str | bool | None, default: bool) -> bool:
    if value is None or isinstance(value, bool):
        return default if value is None else value
    return value.strip().lower() in ("1", "true", "yes", "on")


def load_credentials(state_dir: Path, env: Mapping[str, str]) -> Credentials:
    given = {
        "account_sid": env.get("OPENROOMS_ACCOUNT_SID"),
        "auth_token": env.get("OPENROOMS_AUTH_TOKEN"),
        "api_key_sid": env.get("OPENROOMS_API_KEY_SID"),
        "api_key_secret": env.get("OPENROOMS_API_KEY_SECRET"),
    }
    path = state_dir / "credentials.json"
    generated = False
    if all(given.values()):
        stored: dict[str, str] = {}
    elif path.exists():
        stored = json.loads(path.read_text())
    else:
        stored, generated = _create_credentials(state_dir, path)
    merged = {k: given[k] or stored[k] for k in given}
    return Credentials(**merged, generated=generated)


def _create_credentials(state_dir: Path, path: Path) -> tuple[dict[str, str], bool]:
    """Generate credentials once. Two processes starting together agree: the file is created
    exclusively (complete, then linked into place) and the loser reads the winner's."""
    fresh = {
        "account_sid": "AC" + secrets.token_hex(16),
        "auth_token": secrets.token_hex(16),
        "api_key_sid": "SK" + secrets.token_hex(16),
        "api_key_secret": secrets.token_urlsafe(24),
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    draft = state_dir / f".credentials-{os.getpid()}-{secrets.token_hex(4)}.json"
    draft.write_text(json.dumps(fresh, indent=2))
    draft.chmod(0o600)
    try:
        os.link(draft, path)  # atomic: fails if another process created the file first
    except FileExistsError:
        return json.loads(path.read_text()), False
    finally:
        draft.unlink()
    return fresh, True


def load_config(
    *,
    state_dir: str | None = None,
    store: str | None = None,
    http: str | None = None,
    nats: str | None = None,
    public_url: str | None = None,
    role: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Config:
    """`overrides` are settings given on the command line, by their environment variable names."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if overrides:
        environ = {**environ, **overrides}
    directory = Path(_pick(state_dir, environ, "OPENROOMS_STATE_DIR", DEFAULT_STATE_DIR)).resolve()
    store_url = _pick(store, environ, "OPENROOMS_STORE", f"sqlite:///{directory / 'openrooms.db'}")
    http_addr = _pick(http, environ, "OPENROOMS_HTTP", DEFAULT_HTTP)
    chosen_role = _pick(role, environ, "OPENROOMS_ROLE", "all")
    if chosen_role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}, got {chosen_role!r}")
    credentials = load_credentials(directory, environ)
    policy = AccountPolicy(
        account_sid=credentials.account_sid,
        client_room_creation=_bool(environ.get("OPENROOMS_CLIENT_ROOM_CREATION"), True),
        default_room_type=_choice(environ.get("OPENROOMS_DEFAULT_ROOM_TYPE", "group"), ROOM_TYPES),
        default_status_callback=environ.get("OPENROOMS_DEFAULT_STATUS_CALLBACK") or None,
        default_status_callback_method=_choice(
            environ.get("OPENROOMS_DEFAULT_STATUS_CALLBACK_METHOD", "POST").upper(), ("GET", "POST")
        ),
        default_record_participants_on_connect=_bool(environ.get("OPENROOMS_RECORD_PARTICIPANTS_ON_CONNECT"), False),
        max_go_participants=int(environ.get("OPENROOMS_MAX_GO_PARTICIPANTS", "500")),
    )
    config = Config(
        state_dir=directory,
        store_url=store_url,
        http=http_addr,
        nats_url=_pick(nats, environ, "OPENROOMS_NATS"),
        public_url=_pick(public_url, environ, "OPENROOMS_PUBLIC_URL"),
        role=chosen_role,
        credentials=credentials,
        policy=policy,
        stream_replicas=int(environ.get("OPENROOMS_STREAM_REPLICAS", "1")),
        stream_retention=_choice(
            environ.get("OPENROOMS_STREAM_RETENTION", "limits"), ("limits", "interest", "workqueue")
        ),
        stream_max_age_seconds=float(environ.get("OPENROOMS_STREAM_MAX_AGE_SECONDS", str(7 * 24 * 3600))),
        rate_limit=float(environ.get("OPENROOMS_RATE_LIMIT", "0")),
        webhook_timeout_seconds=float(environ.get("OPENROOMS_WEBHOOK_TIMEOUT_SECONDS", "15")),
        webhook_retry_min_seconds=float(environ.get("OPENROOMS_WEBHOOK_RETRY_MIN_SECONDS", "1")),
        webhook_retry_max_seconds=float(environ.get("OPENROOMS_WEBHOOK_RETRY_MAX_SECONDS", "60")),
        webhook_give_up_seconds=float(environ.get("OPENROOMS_WEBHOOK_GIVE_UP_SECONDS", str(4 * 3600))),
        webhook_max_in_flight=int(environ.get("OPENROOMS_WEBHOOK_MAX_IN_FLIGHT", "32")),
        access_log=_bool(environ.get("OPENROOMS_ACCESS_LOG"), False),
        media_ice_hosts=tuple(a.strip() for a in environ.get("OPENROOMS_MEDIA_ICE_HOSTS", "").split(",") if a.strip()),
        dev=_bool(environ.get("OPENROOMS_DEV"), False),
        sdk_dir=Path(environ.get("OPENROOMS_SDK_DIR") or directory / "sdk" / "node_modules" / "twilio-video" / "dist")
        .expanduser()
        .resolve(),
        stun_urls=_urls(environ.get("OPENROOMS_STUN_URLS", "")),
        turn_urls=_urls(environ.get("OPENROOMS_TURN_URLS", "")),
        turn_secret=environ.get("OPENROOMS_TURN_SECRET") or None,
        turn_ttl_seconds=_turn_ttl(environ.get("OPENROOMS_TURN_TTL") or str(DEFAULT_TTL_S)),
    )
    _check_ice_servers(config)
    return config


def _urls(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in value.split(",") if u.strip())


def _turn_ttl(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError as exc:
        raise ValueError(f"OPENROOMS_TURN_TTL must be a whole number of seconds, got {value!r}") from exc
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise ValueError(f"OPENROOMS_TURN_TTL must be {MIN_TTL_S}..{MAX_TTL_S} seconds, got {seconds}")
    return seconds


def _check_ice_servers(config: Config) -> None:
    """Refuse at startup what clients could not use (bad URL schemes, TURN without a secret)."""
    if config.turn_urls and not config.turn_secret:
        raise ValueError(
            "OPENROOMS_TURN_URLS needs OPENROOMS_TURN_SECRET (coturn's static-auth-secret) to hand out credentials"
        )
    try:
        config.ice_server_settings()
    except ValueError as exc:
        raise ValueError(f"OPENROOMS_STUN_URLS/OPENROOMS_TURN_URLS: {exc}") from exc


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
    return value
