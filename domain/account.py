"""The account aggregate: account-wide caps that span rooms.

Go rooms count against a cap of concurrent go participants per account (500 by default). Every
go-room connect and disconnect is also recorded here, in the same transaction as the room's
event, so the cap holds under concurrent connects to different rooms and across engines.
"""

from __future__ import annotations

from typing import Final

import msgspec

from domain import events as ev


class Account(msgspec.Struct, kw_only=True):
    id: str
    version: int = 0
    go_participants: set[str] = set()


def empty(aggregate_id: str) -> Account:
    """An account with no recorded events yet."""
    return Account(id=aggregate_id)


def apply(account: Account | None, event: ev.Event) -> Account:
    target = account if account is not None else Account(id=event.originator_id)
    if isinstance(event, ev.GoParticipantAdmitted):
        target.go_participants.add(event.participant_sid)
    elif isinstance(event, ev.GoParticipantReleased):
        target.go_participants.discard(event.participant_sid)
    target.version = event.originator_version
    return target


ACCOUNT_EVENT_TYPES: Final = frozenset({ev.GoParticipantAdmitted, ev.GoParticipantReleased})
