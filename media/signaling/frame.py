"""TCMP frames: the JSON objects on the signaling WebSocket (protocol doc §1.1, §1.2).

    client → server   hello{id, version, timeout, cookie?, body?} · msg{body} · heartbeat · bye
    server → client   welcome{negotiatedTimeout} · busy{retryAfter, keepAlive, cookie?} · bad{reason}
                      · msg{body} · heartbeat

Every frame is a JSON text frame with a `type`. An RSP body stays undecoded (`msgspec.Raw`) at this
level; messages.py decodes it. The server never sends `bye` (the SDK ignores it) and never sends
`bad` after `welcome` (tcmp.py enforces the order).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from media.signaling.errors import InvalidMessageError


class Hello(msgspec.Struct, tag="hello", kw_only=True, frozen=True):
    """The client's handshake; `body` (an RSP message, undecoded) becomes the first `receive()`."""

    id: str = ""
    version: int = 2
    timeout: float | UnsetType = UNSET  # the heartbeat timeout (ms) the client asks for, at most
    cookie: str | UnsetType = UNSET  # echoed from an earlier `busy`
    body: msgspec.Raw | UnsetType = UNSET


class Msg(msgspec.Struct, tag="msg", frozen=True):
    body: msgspec.Raw


class Heartbeat(msgspec.Struct, tag="heartbeat", frozen=True):
    pass


class Bye(msgspec.Struct, tag="bye", frozen=True):
    pass


IncomingFrame = Hello | Msg | Heartbeat | Bye


class Welcome(msgspec.Struct, tag="welcome", rename="camel", frozen=True):
    negotiated_timeout: int


class Busy(msgspec.Struct, tag="busy", rename="camel", frozen=True, kw_only=True):
    retry_after: int  # ms; negative: terminal
    keep_alive: bool
    cookie: str | UnsetType = UNSET


class Bad(msgspec.Struct, tag="bad", frozen=True):
    reason: str


class OutgoingMsg(msgspec.Struct, tag="msg", frozen=True):
    body: Any  # an RSP Struct from messages.py


OutgoingFrame = Welcome | Busy | Bad | OutgoingMsg

HEARTBEAT = '{"type":"heartbeat"}'

_decoder: msgspec.json.Decoder[IncomingFrame] = msgspec.json.Decoder(IncomingFrame)
_encoder = msgspec.json.Encoder()


def decode_frame(data: str | bytes) -> IncomingFrame:
    """Decode a frame from the client; `InvalidMessageError` for junk or an unknown frame type."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidMessageError(str(exc)) from exc


def encode_frame(frame: OutgoingFrame) -> str:
    return _encoder.encode(frame).decode()
