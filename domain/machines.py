"""The lifecycle state machines, as shared transition tables.

One model-less `transitions.Machine` per entity type is the table (never a Machine per object,
never one bound to an aggregate; see reference/libraries.md §2.4). `decide()` looks a trigger
up in the table for the entity's current state, checks the guards against a read-only context
and returns the destination state, or raises the domain error the table names. Events are
recorded by the caller with the decided state; applying them never touches a machine.
docs/state-machines.md is generated from these same tables (`python -m domain.machines_doc`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

from transitions import Machine

from domain import errors

Spec = dict[str, Any]


class MachineSpec(NamedTuple):
    entity: str
    states: list[str]
    initial: str
    transitions: list[Spec]
    illegal: dict[str, Callable[[str], errors.DomainError]]
    """trigger → error raised when the trigger is not legal in the current state (gets the id)."""
    unmet: dict[str, Callable[[str, Any], errors.DomainError]]
    """condition → error raised when a guard fails (gets the id and the guard context)."""


_LIVE = ["created", "occupied", "empty"]

ROOM = MachineSpec(
    entity="room",
    states=[*_LIVE, "completed"],
    initial="created",
    transitions=[
        {"trigger": "connect", "source": _LIVE, "dest": "occupied", "conditions": "has_capacity"},
        {"trigger": "leave", "source": "occupied", "dest": "empty", "conditions": "is_last_participant"},
        {"trigger": "leave", "source": "occupied", "dest": "occupied"},
        {"trigger": "update", "source": _LIVE, "dest": "="},
        {"trigger": "complete", "source": _LIVE, "dest": "completed"},
        {"trigger": "expire_unused", "source": "created", "dest": "completed"},
        {"trigger": "expire_empty", "source": "empty", "dest": "completed"},
        {"trigger": "expire_max_duration", "source": _LIVE, "dest": "completed"},
    ],
    illegal={
        "connect": errors.RoomCompletedError,
        "update": errors.RoomCompletedError,
        "complete": lambda sid: errors.RoomStatusInvalidError(f"room {sid} is not in-progress"),
    },
    unmet={"has_capacity": lambda sid, room: errors.RoomFullError(sid, room.settings.max_participants)},
)

PARTICIPANT = MachineSpec(
    entity="participant",
    states=["connected", "disconnected"],
    initial="connected",
    transitions=[
        {"trigger": "act", "source": "connected", "dest": "="},
        {"trigger": "leave", "source": "connected", "dest": "disconnected"},
        {"trigger": "kick", "source": "connected", "dest": "disconnected"},
        {"trigger": "replace", "source": "connected", "dest": "disconnected"},
        {"trigger": "expire", "source": "connected", "dest": "disconnected"},
        {"trigger": "end_room", "source": "connected", "dest": "disconnected"},
    ],
    illegal={},
    unmet={},
)

TRACK = MachineSpec(
    entity="track",
    states=["enabled", "disabled", "unpublished"],
    initial="enabled",
    transitions=[
        {"trigger": "enable", "source": ["enabled", "disabled"], "dest": "enabled"},
        {"trigger": "disable", "source": ["enabled", "disabled"], "dest": "disabled"},
        {"trigger": "unpublish", "source": ["enabled", "disabled"], "dest": "unpublished"},
    ],
    illegal={},
    unmet={},
)

SUBSCRIPTION = MachineSpec(
    entity="subscription",
    states=["unsubscribed", "subscribed"],
    initial="unsubscribed",
    transitions=[
        {"trigger": "subscribe", "source": "unsubscribed", "dest": "subscribed"},
        {"trigger": "unsubscribe", "source": "subscribed", "dest": "unsubscribed"},
    ],
    illegal={},
    unmet={},
)

RECORDING = MachineSpec(
    entity="recording",
    states=["requested", "started", "stopping", "completed", "failed", "deleted"],
    initial="requested",
    transitions=[
        {"trigger": "start", "source": "requested", "dest": "started"},
        {"trigger": "stop", "source": ["requested", "started"], "dest": "stopping"},
        {"trigger": "complete", "source": ["started", "stopping"], "dest": "completed"},
        {"trigger": "fail", "source": ["requested", "started", "stopping"], "dest": "failed"},
        {"trigger": "delete", "source": ["completed", "failed"], "dest": "deleted"},
    ],
    illegal={},
    unmet={},
)

SPECS: Final = (ROOM, PARTICIPANT, TRACK, SUBSCRIPTION, RECORDING)


def build_machine(spec: MachineSpec) -> Machine:
    """The transition table of `spec` as a model-less transitions Machine."""
    return Machine(
        model=None,
        states=spec.states,
        transitions=spec.transitions,
        initial=spec.initial,
        auto_transitions=False,
    )


class _Option(NamedTuple):
    dest: str
    conditions: tuple[tuple[str, bool], ...]


def _compile(machine: Machine) -> dict[tuple[str, str], list[_Option]]:
    """(state, trigger) → ordered options, read once from the Machine's own tables."""
    table: dict[tuple[str, str], list[_Option]] = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for t in transitions:
                conditions = tuple((str(c.func), bool(c.target)) for c in t.conditions)
                dest = source if t.dest in (None, "=") else t.dest
                table.setdefault((source, trigger), []).append(_Option(dest, conditions))
    return table


MACHINES: Final = {spec.entity: build_machine(spec) for spec in SPECS}
_TABLES: Final = {spec.entity: (_compile(MACHINES[spec.entity]), spec) for spec in SPECS}


def decide(entity: str, state: str, trigger: str, ctx: object, ident: str = "") -> str:
    """The state `trigger` leads to from `state`, or the table's domain error.

    `ctx` answers the guards: each condition name is a no-argument method on it.
    """
    table, spec = _TABLES[entity]
    options = table.get((state, trigger))
    if not options:
        make_illegal = spec.illegal.get(trigger)
        if make_illegal is not None:
            raise make_illegal(ident)
        raise errors.IllegalTransitionError(entity, state, trigger)
    failed = ""
    for option in options:
        for name, target in option.conditions:
            if bool(getattr(ctx, name)()) != target:
                failed = name
                break
        else:
            return option.dest
    make_unmet = spec.unmet.get(failed)
    if make_unmet is not None:
        raise make_unmet(ident, ctx)
    raise errors.IllegalTransitionError(entity, state, f"{trigger} (guard {failed} failed)")
