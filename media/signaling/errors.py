"""Signaling errors, each carrying the Twilio code the twilio-video SDK knows (protocol doc §7).

    SignalingError (code, message)
    ├── InvalidMessageError      53004  a client frame or RSP body that does not decode
    ├── ConnectionClosedError    53001  the TCMP socket is closed (close_code, reason);
    │                            53002  when the heartbeat watchdog closed it
    ├── TcmpStateError           53000  an operation the connection's state forbids (a server bug:
    │                                   `send` before `welcome`, `busy` after it)
    └── SdpError                 53403  an SDP the server cannot read (53401: cannot rewrite its own)

`code` is what an app sees when the error reaches the client as an RSP `error` message
(`ErrorMessage.from_error`); `message` is the text sent with it. The SDK replaces the text of
codes it knows with its own, so the message mostly serves logs.
"""

from __future__ import annotations


class SignalingError(Exception):
    """Base of every signaling error; `code` is a Twilio error code."""

    code: int = 53000

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidMessageError(SignalingError):
    """The client sent something that is not a valid TCMP frame or RSP message (53004)."""

    code = 53004

    def __init__(self, detail: str) -> None:
        super().__init__(f"Client sent an invalid signaling message: {detail}")
        self.detail = detail


class ConnectionClosedError(SignalingError):
    """The TCMP connection is closed; `close_code` is the WebSocket close code, if known."""

    code = 53001

    def __init__(self, close_code: int | None, reason: str = "", *, code: int | None = None) -> None:
        shown = "no close code" if close_code is None else f"close code {close_code}"
        super().__init__(f"Signaling connection closed ({shown}){': ' + reason if reason else ''}", code=code)
        self.close_code = close_code
        self.reason = reason


class TcmpStateError(SignalingError):
    """A TCMP operation was used in a state that forbids it; this is a bug in the server."""

    code = 53000


class SdpError(SignalingError):
    """An SDP could not be read (53403) or a server SDP could not be rewritten (53401)."""

    code = 53403
