"""Errors of the session layer, each with the Twilio code the SDK shows.

    SignalingError (media.signaling.errors)
    ├── EngineError        the engine refused a command or query (its own code: 20101-20107 for
    │                      tokens, 53105 room full, 53205 duplicate identity, ...)
    └── SessionError       the session cannot go on: 53000 (engine unreachable), 53100 (no room
                           name), 53204 (unknown session on `sync`)

Both reach the client as an RSP `error` (media.signaling.route), which rejects `connect()`
or disconnects the room with that code.
"""

from __future__ import annotations

from media.signaling.errors import SignalingError


class EngineError(SignalingError):
    """A `rooms.cmd.*` or `rooms.qry.*` request answered `{"ok": false, "error": {code, message}}`."""

    def __init__(self, subject: str, code: int, message: str) -> None:
        super().__init__(message, code=code)
        self.subject = subject


class SessionError(SignalingError):
    """The session layer cannot serve the request (the code says why)."""
