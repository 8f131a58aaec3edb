"""The STUN/TURN settings (`OPENROOMS_STUN_URLS`, `OPENROOMS_TURN_URLS`, `OPENROOMS_TURN_SECRET`,
`OPENROOMS_TURN_TTL`): parsed from the environment, refused at startup when clients could not use
them, and turned into the `IceServerSettings` that signaling hands out (docs/turn.md).

Credentials are given in the environment, so loading the config writes nothing.
"""

from __future__ import annotations

import pytest

from adapters.cli import main
from adapters.config import load_config
from media.session.ice_servers import IceServerSettings

GIVEN_CREDENTIALS = {
    "OPENROOMS_ACCOUNT_SID": "AC" + "1" * 32,
    "OPENROOMS_AUTH_TOKEN": "token",
    "OPENROOMS_API_KEY_SID": "SK" + "2" * 32,
    "OPENROOMS_API_KEY_SECRET": "secret",
}


def config_with(tmp_path, **env: str):
    return load_config(state_dir=str(tmp_path / "state"), env={**GIVEN_CREDENTIALS, **env})


def test_without_ice_settings_clients_get_no_servers_and_credentials_would_last_a_day(tmp_path):
    assert config_with(tmp_path).ice_server_settings() == IceServerSettings(ttl_s=86400)


def test_comma_separated_urls_secret_and_ttl_become_the_ice_server_settings(tmp_path):
    config = config_with(
        tmp_path,
        OPENROOMS_STUN_URLS="stun:turn.example.com:3478",
        OPENROOMS_TURN_URLS=" turn:turn.example.com:3478?transport=udp, turns:turn.example.com:5349?transport=tcp ,",
        OPENROOMS_TURN_SECRET="shared with coturn",
        OPENROOMS_TURN_TTL="3600",
    )

    assert config.ice_server_settings() == IceServerSettings(
        stun_urls=("stun:turn.example.com:3478",),
        turn_urls=("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"),
        turn_secret="shared with coturn",
        ttl_s=3600,
    )
    assert "shared with coturn" not in repr(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENROOMS_TURN_URLS": "turn:turn.example.com"}, "OPENROOMS_TURN_URLS needs OPENROOMS_TURN_SECRET"),
        ({"OPENROOMS_TURN_TTL": "59"}, "OPENROOMS_TURN_TTL must be 60..604800 seconds, got 59"),
        ({"OPENROOMS_TURN_TTL": "604801"}, "OPENROOMS_TURN_TTL must be 60..604800 seconds, got 604801"),
        ({"OPENROOMS_TURN_TTL": "1d"}, "OPENROOMS_TURN_TTL must be a whole number of seconds, got '1d'"),
        ({"OPENROOMS_STUN_URLS": "turn.example.com:3478"}, "STUN URL 'turn.example.com:3478' must start with stun:"),
        (
            {"OPENROOMS_TURN_URLS": "https://turn.example.com", "OPENROOMS_TURN_SECRET": "s"},
            "TURN URL 'https://turn.example.com' must start with turn: or turns:",
        ),
    ],
)
def test_unusable_ice_settings_are_refused_with_the_setting_named(tmp_path, env, message):
    with pytest.raises(ValueError, match=message):
        config_with(tmp_path, **env)


def test_serve_with_turn_urls_but_no_secret_exits_with_the_reason(tmp_path, monkeypatch, capsys):
    for name, value in {**GIVEN_CREDENTIALS, "OPENROOMS_TURN_URLS": "turn:turn.example.com"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENROOMS_TURN_SECRET", raising=False)

    code = main(["serve", "--state-dir", str(tmp_path / "state")])

    assert code == 2
    assert "openrooms: OPENROOMS_TURN_URLS needs OPENROOMS_TURN_SECRET" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
