"""Twilio's request parameters: PascalCase form fields and query strings → the snake_case bodies of
the engine's commands and queries.

What the helper libraries send (reference/twilio-video-api.md §10.2): booleans as `true`/`false`,
arrays as repeated keys, JSON-valued parameters (`RecordingRules`, `Rules`) as one JSON string
(an array or `{"rules": [...]}`), dates as `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`. Unknown
parameters are ignored, as Twilio does. A value that cannot be read answers 400 with the
parameter's Twilio code (20001 unless the parameter has its own, such as 53215 for `Rules`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple

from multidict import MultiMapping

Kind = Literal["str", "int", "bool", "list", "json", "date", "enum"]
INVALID = 20001


class BadParameterError(ValueError):
    def __init__(self, message: str, code: int = INVALID) -> None:
        super().__init__(message)
        self.code = code


class Param(NamedTuple):
    name: str
    """Twilio's PascalCase name."""
    field: str
    """The snake_case field of the command or query body."""
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    required: bool = False
    code: int = INVALID
    """The Twilio code when the value cannot be read."""


def read(source: MultiMapping[str], params: Sequence[Param]) -> dict[str, Any]:
    """The body fields for the parameters present in `source`."""
    body: dict[str, Any] = {}
    for p in params:
        values = source.getall(p.name, [])
        if not values:
            if p.required:
                raise BadParameterError(f"Missing required parameter {p.name} in the request", p.code)
            continue
        body[p.field] = values if p.kind == "list" else _convert(p, values[-1])
    return body


def _convert(p: Param, raw: str) -> Any:
    if p.kind == "str":
        return raw
    if p.kind == "enum":
        if raw not in p.choices:
            raise BadParameterError(f"Invalid {p.name} {raw!r}: expected one of {', '.join(p.choices)}", p.code)
        return raw
    if p.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise BadParameterError(f"Invalid {p.name} {raw!r}: expected an integer", p.code) from None
    if p.kind == "bool":
        lowered = raw.lower()
        if lowered not in ("true", "false"):
            raise BadParameterError(f"Invalid {p.name} {raw!r}: expected true or false", p.code)
        return lowered == "true"
    if p.kind == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadParameterError(f"Invalid {p.name}: not JSON ({exc})", p.code) from None
    return _date(p, raw)


def _date(p: Param, raw: str) -> str:
    """`YYYY-MM-DD` or an ISO-8601 date-time (`Z` or an offset) → `YYYY-MM-DDTHH:MM:SSZ` in UTC."""
    try:
        if len(raw) == 10:
            at = datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        else:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except ValueError:
        raise BadParameterError(
            f"Invalid {p.name} {raw!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", p.code
        ) from None
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def echo(source: MultiMapping[str], params: Sequence[Param]) -> list[tuple[str, str]]:
    """The filters as given, in a stable order: what `meta` URLs carry to the next page."""
    return [(p.name, v) for p in params for v in source.getall(p.name, [])]


# --- the parameters of each operation ------------------------------------------------------------

ROOM_CREATE = (
    Param("UniqueName", "unique_name"),
    Param("Type", "type"),
    Param("StatusCallback", "status_callback"),
    Param("StatusCallbackMethod", "status_callback_method"),
    Param("MaxParticipants", "max_participants", "int", code=53107),
    Param("RecordParticipantsOnConnect", "record_participants_on_connect", "bool"),
    Param("VideoCodecs", "video_codecs", "list"),
    Param("MediaRegion", "media_region"),
    Param("RecordingRules", "recording_rules", "json", code=53120),
    Param("AudioOnly", "audio_only", "bool"),
    Param("MaxParticipantDuration", "max_participant_duration", "int", code=53123),
    Param("EmptyRoomTimeout", "empty_room_timeout", "int", code=53109),
    Param("UnusedRoomTimeout", "unused_room_timeout", "int", code=53109),
    Param("LargeRoom", "large_room", "bool"),
    Param("EnableTurn", "enable_turn", "bool"),
)
DATES = (
    Param("DateCreatedAfter", "date_created_after", "date"),
    Param("DateCreatedBefore", "date_created_before", "date"),
)
ROOM_FILTERS = (
    Param("Status", "status", "enum", ("in-progress", "completed", "failed")),
    Param("UniqueName", "unique_name"),
    *DATES,
)
PARTICIPANT_FILTERS = (
    Param("Status", "status", "enum", ("connected", "disconnected", "reconnecting")),
    Param("Identity", "identity"),
    *DATES,
)
RECORDING_STATUS = Param("Status", "status", "enum", ("processing", "completed", "deleted", "failed"))
RECORDING_FILTERS = (
    RECORDING_STATUS,
    Param("SourceSid", "source_sid"),
    Param("GroupingSid", "grouping_sid", "list"),
    *DATES,
    Param("MediaType", "media_type", "enum", ("audio", "video")),
)
ROOM_RECORDING_FILTERS = (RECORDING_STATUS, Param("SourceSid", "source_sid"), *DATES)
ROOM_UPDATE = (Param("Status", "status", required=True),)
PARTICIPANT_UPDATE = (Param("Status", "status", required=True),)
SUBSCRIBE_RULES = (Param("Rules", "rules", "json", code=53215),)
RECORDING_RULES = (Param("Rules", "rules", "json", code=53120),)
PAGING = (
    Param("PageSize", "page_size", "int"),
    Param("Page", "page", "int"),
    Param("PageToken", "page_token"),
)
