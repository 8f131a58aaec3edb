"""Errors of the Python participant client, each carrying the Twilio code the SDK would show.

    ClientError (code, message)
    ├── SignalingConnectionError   53000 the socket failed, no `welcome`, `bad`; 53001 the server
    │                              closed it mid-session; 53002 missed heartbeats; 53006 busy
    ├── AccessTokenError           20101-20107 the server refused the token
    ├── RoomError                  531xx (RoomCompletedError: 53118, the room was completed)
    ├── ParticipantError           532xx (e.g. 53205 duplicate identity)
    ├── TrackError                 533xx, and a publication the server failed (any code)
    ├── MediaError                 534xx negotiation or media failures
    └── ClientStateError           an operation the room's state forbids (publish after disconnect)

`twilio_error(code, message)` turns an RSP `error` (or a failed publication) into the class of
its code's range; codes outside them are a plain `ClientError`.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every client error; `code` is a Twilio error code."""

    code: int = 53000

    def __init__(self, message: str, *, code: int | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(f"{message} ({self.code})")
        self.message = message


class SignalingConnectionError(ClientError):
    """The signaling socket could not be opened or kept (53000, 53001, 53002, 53006)."""

    code = 53000


class AccessTokenError(ClientError):
    code = 20101


class RoomError(ClientError):
    code = 53100


class RoomCompletedError(RoomError):
    """The room was completed (REST `status=completed`, or it ended) while connected."""

    code = 53118

    def __init__(self) -> None:
        super().__init__("Room completed")


class ParticipantError(ClientError):
    code = 53200


class TrackError(ClientError):
    code = 53300


class MediaError(ClientError):
    code = 53400


class ClientStateError(ClientError):
    """The room is not in a state that allows the operation (a bug in the caller)."""

    code = 53000


_RANGES: tuple[tuple[range, type[ClientError]], ...] = (
    (range(20101, 20108), AccessTokenError),
    (range(53000, 53100), SignalingConnectionError),
    (range(53100, 53200), RoomError),
    (range(53200, 53300), ParticipantError),
    (range(53300, 53400), TrackError),
    (range(53400, 53500), MediaError),
)


def twilio_error(code: int, message: str) -> ClientError:
    """The typed error for a Twilio `code` sent by the server."""
    if code == RoomCompletedError.code:
        return RoomCompletedError()
    for codes, error_class in _RANGES:
        if code in codes:
            return error_class(message, code=code)
    return ClientError(message, code=code)
