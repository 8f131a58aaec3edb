"""Typed identifiers.

Twilio SIDs are a two-letter prefix and 32 lowercase hex digits. They are typed here so that
a room SID is never passed where a participant SID is expected; the prefixes are mapped once.
Aggregate ids in the event log are the SIDs themselves for rooms, and `name:<unique name>` /
`account:<account sid>` for the room-name index and the account.
"""

from __future__ import annotations

import re
from typing import NewType, Protocol

AccountSid = NewType("AccountSid", str)
RoomSid = NewType("RoomSid", str)
ParticipantSid = NewType("ParticipantSid", str)
TrackSid = NewType("TrackSid", str)
RecordingSid = NewType("RecordingSid", str)

ROOM_PREFIX = "RM"
PARTICIPANT_PREFIX = "PA"
TRACK_PREFIX = "MT"
RECORDING_PREFIX = "RT"
ACCOUNT_PREFIX = "AC"
API_KEY_PREFIX = "SK"

_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def is_sid(value: str, prefix: str) -> bool:
    """True when `value` is a SID with the given two-letter prefix."""
    return value.startswith(prefix) and _SID.match(value) is not None


class SidSource(Protocol):
    """Makes new SIDs; injected so the domain never reads randomness itself."""

    def __call__(self, prefix: str) -> str: ...


class CountingSidSource:
    """Deterministic SIDs (prefix + a counter in hex), for tests and replays."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def __call__(self, prefix: str) -> str:
        value = self._next
        self._next += 1
        return f"{prefix}{value:032x}"


def room_name_key(unique_name: str) -> str:
    """The aggregate id of the room-name index entry for `unique_name`."""
    return f"name:{unique_name}"


def account_key(account_sid: str) -> str:
    """The aggregate id of the account aggregate."""
    return f"account:{account_sid}"
