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
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple

from multidict import MultiMapping

Kind = Literal["str", "int", "bool", "list", "json", "date", "enum", "sid", "sids"]
INVALID = 20001
_SID = re.compile(r"[a-zA-Z]{2}[0-9a-fA-F]{32}")


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
        if p.kind == "list":
            body[p.field] = values
        elif p.kind == "sids":
            body[p.field] = [_sid(p, v) for v in values]
        else:
            body[p.field] = _convert(p, values[-1])
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
        except RecursionError:
            raise BadParameterError(f"Invalid {p.name}: nested too deeply", p.code) from None
    if p.kind == "sid":
        return _sid(p, raw)
    return _date(p, raw)


def _sid(p: Param, raw: str) -> str:
    if not _SID.fullmatch(raw):
        raise BadParameterError(f"Invalid {p.name} {raw!r}: expected a SID (two letters and 32 hex digits)", p.code)
    return raw


def _date(p: Param, raw: str) -> str:
    """`YYYY-MM-DD` or an ISO-8601 date-time (`Z` or an offset) → RFC 3339 in UTC; instants beyond
    the years 1..9999 once in UTC are clamped to them (a filter that far out matches the same rows)."""
    try:
        if len(raw) == 10:
            at = datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        else:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else _utc(at)
    except ValueError:
        raise BadParameterError(
            f"Invalid {p.name} {raw!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", p.code
        ) from None
    return at.isoformat().replace("+00:00", "Z")


def _utc(at: datetime) -> datetime:
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return (datetime.max if at.year > 1 else datetime.min).replace(tzinfo=UTC)


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
ROOM_CREATE_IGNORED = (
    Param("TranscribeParticipantsOnConnect", "transcribe_participants_on_connect", "bool"),
    Param("TranscriptionsConfiguration", "transcriptions_configuration", "json"),
)
"""Read (so bad values are refused) but not acted on: transcriptions are not built yet."""
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
    Param("SourceSid", "source_sid", "sid"),
    Param("GroupingSid", "grouping_sid", "sids"),
    *DATES,
    Param("MediaType", "media_type", "enum", ("audio", "video")),
)
ROOM_RECORDING_FILTERS = (RECORDING_STATUS, Param("SourceSid", "source_sid", "sid"), *DATES)
ROOM_UPDATE = (Param("Status", "status", required=True),)
PARTICIPANT_UPDATE = (Param("Status", "status", required=True),)
SUBSCRIBE_RULES = (Param("Rules", "rules", "json", required=True, code=53215),)
RECORDING_RULES = (Param("Rules", "rules", "json", required=True, code=53120),)
PAGING = (
    Param("PageSize", "page_size", "int"),
    Param("Page", "page", "int"),
    Param("PageToken", "page_token"),
)
