"""What a command returns: the ids it produced, or the Twilio error it was refused with.

A result is stored with the command's id in the same transaction as its events, so a command
seen again (also after a restart) answers with its first result and records nothing.
"""

from __future__ import annotations

import msgspec

from domain.errors import DomainError


class CommandResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool = True
    room_sid: str | None = None
    participant_sid: str | None = None
    track_sid: str | None = None
    recording_sid: str | None = None
    track_sids: tuple[str, ...] = ()
    replaced_participant_sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    error_status: int | None = None

    @classmethod
    def refused(cls, error: DomainError) -> CommandResult:
        return cls(ok=False, error_code=error.code, error_message=error.message, error_status=error.status)


result_encoder = msgspec.json.Encoder()
result_decoder = msgspec.json.Decoder(CommandResult)
