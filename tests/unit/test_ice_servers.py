"""The `iced` answer: STUN and TURN servers, with coturn TURN REST API credentials.

What a client sees is the `iced` message on the wire; the credentials are checked against
vectors computed outside Python (`printf '%s' USERNAME | openssl dgst -sha1 -hmac SECRET -binary
| base64`) and against the shape coturn's man page (turnserver(1), "TURN REST API") documents:
`temporary-username = timestamp ":" username`, `temporary-password =
base64(hmac-sha1(shared-secret, temporary-username))`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from media.session.ice_servers import IceServerSettings, ice_servers
from media.signaling.messages import Iced, encode_server_message

NOW = 1_700_000_000.75
SECRET = "north"
TURN = ("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp")


def iced_body(settings: IceServerSettings, identity: str, now: float = NOW) -> dict[str, object]:
    """The `iced` message as the SDK decodes it."""
    return json.loads(encode_server_message(Iced(ice_servers=ice_servers(settings, identity, now))))


def test_turn_credentials_match_an_openssl_computed_vector():
    settings = IceServerSettings(turn_urls=TURN, turn_secret=SECRET)

    body = iced_body(settings, "alice")

    assert body == {
        "type": "iced",
        "ice_servers": [
            {
                "urls": list(TURN),
                "username": "1700086400:alice",  # int(now) + 86400, then the identity
                "credential": "SXua5ne/+mDhiHTp0pQJzRO4ESg=",
            }
        ],
    }


def test_turn_credentials_last_the_configured_ttl_from_now():
    settings = IceServerSettings(turn_urls=TURN, turn_secret=SECRET, ttl_s=60)

    (turn,) = iced_body(settings, "bob")["ice_servers"]  # type: ignore[misc]

    assert turn["username"] == "1700000060:bob"
    assert turn["credential"] == "eL8NT0+rTt6tCiQJAIGJMYOQExs="


@pytest.mark.parametrize("identity", ["alice", "user:with:colons", "Zoë 🎧", ""])
def test_credentials_have_the_shape_coturn_documents(identity):
    settings = IceServerSettings(turn_urls=TURN, turn_secret="another secret", ttl_s=3600)

    (turn,) = iced_body(settings, identity, now=1_800_000_000)["ice_servers"]  # type: ignore[misc]

    timestamp, separator, user = turn["username"].partition(":")  # coturn's default rest-api-separator
    assert (int(timestamp), separator, user) == (1_800_003_600, ":", identity)
    expected = hmac.new(b"another secret", turn["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn["credential"], validate=True) == expected


def test_stun_comes_first_without_credentials():
    settings = IceServerSettings(
        stun_urls=("stun:stun.example.com:3478",), turn_urls=TURN[:1], turn_secret=SECRET, ttl_s=86400
    )

    servers = iced_body(settings, "alice")["ice_servers"]

    assert servers == [
        {"urls": ["stun:stun.example.com:3478"]},
        {"urls": [TURN[0]], "username": "1700086400:alice", "credential": "SXua5ne/+mDhiHTp0pQJzRO4ESg="},
    ]


def test_stun_only_hands_out_no_credentials():
    assert iced_body(IceServerSettings(stun_urls=("stun:127.0.0.1:3478",)), "alice")["ice_servers"] == [
        {"urls": ["stun:127.0.0.1:3478"]}
    ]


def test_nothing_configured_answers_an_empty_list():
    assert iced_body(IceServerSettings(), "alice") == {"type": "iced", "ice_servers": []}


def test_the_same_second_gives_the_same_credentials_and_a_later_one_new_ones():
    settings = IceServerSettings(turn_urls=TURN, turn_secret=SECRET)

    first = ice_servers(settings, "alice", NOW)
    again = ice_servers(settings, "alice", int(NOW))
    later = ice_servers(settings, "alice", NOW + 1)

    assert first == again
    assert later[0].username == "1700086401:alice"
    assert later[0].credential != first[0].credential


def test_turn_urls_without_a_secret_are_refused():
    with pytest.raises(ValueError, match="TURN URLs need the TURN server's shared secret"):
        IceServerSettings(turn_urls=TURN)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stun_urls": ("turn:turn.example.com",)}, "STUN URL 'turn:turn.example.com' must start with stun: or stuns:"),
        ({"turn_urls": ("stun:x.example.com",), "turn_secret": "s"}, "TURN URL 'stun:x.example.com' must start with"),
        ({"turn_urls": ("turn.example.com:3478",), "turn_secret": "s"}, "must start with turn: or turns:"),
        ({"ttl_s": 59}, "lifetime must be 60..604800 seconds, got 59"),
        ({"ttl_s": 604801}, "lifetime must be 60..604800 seconds, got 604801"),
    ],
)
def test_unusable_settings_are_refused_with_the_reason(settings, message):
    with pytest.raises(ValueError, match=message):
        IceServerSettings(**settings)


def test_the_secret_stays_out_of_the_settings_repr():
    assert "north" not in repr(IceServerSettings(turn_urls=TURN, turn_secret=SECRET))
