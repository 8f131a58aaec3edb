"""Renders docs/state-machines.md from the transition tables in domain.machines.

    python -m domain.machines_doc           write docs/state-machines.md
    python -m domain.machines_doc --check   exit 1 when the file differs from render()

The diagrams are drawn by transitions' GraphMachine (Mermaid engine: no graphviz needed) from
the same `MachineSpec` objects that `decide()` compiles, and the tables are read from them too,
so the docs cannot describe a machine other than the one that runs. `render()` is pure and
deterministic (the tables' own order); tests/unit/test_docs_current.py fails when the committed
file is stale.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from transitions.extensions import GraphMachine

from domain import errors
from domain.machines import SPECS, MachineSpec, Spec

DOC_PATH: Final = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"
REGENERATE: Final = "python -m domain.machines_doc"
SAME_STATE: Final = "="

_INTROS: Final[dict[str, str]] = {
    "room": (
        "A room's lifecycle (`Room.state`, domain/room.py). `created`: made by `create_room` (or by an ad-hoc "
        "`connect_participant`), nobody has joined yet, the unused-room deadline runs; `occupied`: at least one "
        "participant is connected; `empty`: the last participant left, the empty-room deadline runs; `completed`: "
        "ended, for good. Twilio shows the three live states as `in-progress`. Triggers: `connect` "
        "(`connect_participant`, unless it replaces a participant with the same identity), `leave` (a disconnect "
        "that takes a participant out: left, kicked, max duration), `update` (every command that changes a live "
        "room goes through `live_room`: publish, enable/disable, unpublish, subscribe and recording rules), "
        "`complete` (`complete_room`) and the three `expire_*` (`expire_deadlines`)."
    ),
    "participant": (
        "A participant is `connected` while it is in `Room.participants`; `ParticipantDisconnected` removes it "
        "(the read model keeps its row, status `disconnected`). The state is not stored: handlers decide from "
        "`connected`, and a command naming a disconnected participant fails before that with "
        "`ParticipantNotFoundError` (53204). The triggers say why a connection ends and which reason is recorded: "
        "`leave` → `left`, `kick` → `kicked` (`disconnect_participant`), `replace` → `duplicate-identity` (53205), "
        "`expire` → `max-duration` (53216), `end_room` → `room-ended` (53118). `act` is `publish_track`."
    ),
    "track": (
        "A published track (`Track.state`): `enabled` or `disabled` (`set_track_enabled`; a trigger that leads "
        "to the current state records nothing); `unpublished` once `TrackUnpublished` removed it from "
        "`Room.tracks` (`unpublish_track`, and every track of a participant who disconnects). A command naming "
        "an unknown or unpublished track fails before that with `TrackNotFoundError` (20404)."
    ),
    "subscription": (
        "One per (subscriber, track) pair: `subscribed` while the pair is in `Room.subscriptions`. No command "
        "takes these triggers directly: after a connect, a publish, a subscribe-rules update or an anonymize, "
        "the handlers record `TrackSubscribed` / `TrackUnsubscribed` until the subscriptions equal the "
        "participants' rules evaluated on the published tracks, and they end every subscription to a track "
        "before it is unpublished or its subscriber disconnects."
    ),
    "recording": (
        "A track recording (`Recording.state`), one per track per period the recording rules select it (audio "
        "and video tracks in group rooms). `requested`: the rules selected the track (`RecordingRequested`); "
        "`started`, `completed`, `failed`: reported by the media layer (`report_recording_*`); `stopping`: the "
        "track is no longer selected (rules changed, track unpublished, participant left, room ended); `deleted`: "
        "`delete_recording`. Twilio's `status` is `processing` until `completed`, `failed` or `deleted`."
    ),
}


class _Placeholder:
    """Stands for a guard context while an error's message is rendered: `<room.settings.max_participants>`."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> _Placeholder:
        return _Placeholder(f"{self._path}.{name}")

    def __format__(self, format_spec: str) -> str:
        return f"<{self._path}>"

    def __str__(self) -> str:
        return f"<{self._path}>"


def _sources(transition: Spec) -> list[str]:
    source = transition["source"]
    return [source] if isinstance(source, str) else list(source)


def _conditions(transition: Spec) -> list[tuple[str, bool]]:
    """(condition, required truth value) in the order the Machine checks them."""

    def names(key: str) -> list[str]:
        value = transition.get(key) or []
        return [value] if isinstance(value, str) else list(value)

    return [(name, True) for name in names("conditions")] + [(name, False) for name in names("unless")]


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _describe(error: errors.DomainError) -> str:
    return f"`{type(error).__name__}` {error.code} (HTTP {error.status}): `{_cell(error.message)}`"


def mermaid(spec: MachineSpec) -> str:
    """The spec's state diagram as Mermaid `stateDiagram-v2` text, drawn by transitions' GraphMachine.

    GraphMachine's styling (it marks the machine's own current state as active) and its title block
    are dropped; states no trigger leaves get an end marker.
    """
    machine = GraphMachine(
        states=list(spec.states),
        transitions=copy.deepcopy(spec.transitions),
        initial=spec.initial,
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title=spec.entity,
    )
    source: str = machine.get_graph().source
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "stateDiagram-v2")
    kept = ["stateDiagram-v2"]
    for line in lines[start + 1 :]:
        text = line.strip()
        if text and not text.startswith(("classDef ", "Class ")):
            kept.append("  " + text)
    left = {state for t in spec.transitions for state in _sources(t)}
    kept.extend(f"  {state} --> [*]" for state in spec.states if state not in left)
    return "\n".join(kept)


def _transition_rows(spec: MachineSpec) -> list[str]:
    rows = [
        "| Trigger | From | To | Guard | When the guard fails |",
        "|---|---|---|---|---|",
    ]
    for index, transition in enumerate(spec.transitions):
        trigger = transition["trigger"]
        sources = _sources(transition)
        dest = transition.get("dest")
        conditions = _conditions(transition)
        earlier = [t for t in spec.transitions[:index] if t["trigger"] == trigger and set(_sources(t)) & set(sources)]
        later = [
            t for t in spec.transitions[index + 1 :] if t["trigger"] == trigger and set(_sources(t)) & set(sources)
        ]
        if conditions:
            guard = " and ".join(_code(name) if target else f"not {_code(name)}" for name, target in conditions)
        else:
            guard = "otherwise (the row above did not apply)" if earlier else "—"
        if not conditions:
            fails = "—"
        elif later:
            fails = "the next row is tried"
        else:
            fails = "; ".join(
                _unmet(spec, name, trigger) if len(conditions) == 1 else f"{_code(name)}: {_unmet(spec, name, trigger)}"
                for name, _ in conditions
            )
        rows.append(
            f"| {_code(trigger)} | {', '.join(map(_code, sources))} | "
            f"{'(unchanged)' if dest in (None, SAME_STATE) else _code(str(dest))} | {guard} | {fails} |"
        )
    return rows


def _unmet(spec: MachineSpec, condition: str, trigger: str) -> str:
    make = spec.unmet.get(condition)
    if make is not None:
        return _describe(make("<id>", _Placeholder(spec.entity)))
    return _describe(errors.IllegalTransitionError(spec.entity, "<state>", f"{trigger} (guard {condition} failed)"))


def _refusal_rows(spec: MachineSpec) -> list[str]:
    rows = [
        "| Trigger | Not legal from | Refused with |",
        "|---|---|---|",
    ]
    triggers = list(dict.fromkeys(t["trigger"] for t in spec.transitions))
    for trigger in triggers:
        legal = {s for t in spec.transitions if t["trigger"] == trigger for s in _sources(t)}
        illegal = [state for state in spec.states if state not in legal]
        if not illegal:
            rows.append(f"| {_code(trigger)} | — (legal in every state) | — |")
            continue
        make = spec.illegal.get(trigger)
        error = make("<id>") if make is not None else errors.IllegalTransitionError(spec.entity, "<state>", trigger)
        rows.append(f"| {_code(trigger)} | {', '.join(map(_code, illegal))} | {_describe(error)} |")
    return rows


def _section(spec: MachineSpec) -> list[str]:
    return [
        f"## {spec.entity.capitalize()}",
        "",
        _INTROS.get(spec.entity, "(No description yet: add one to `_INTROS` in domain/machines_doc.py.)"),
        "",
        f"States: {', '.join(map(_code, spec.states))}; initial: {_code(spec.initial)}.",
        "",
        "```mermaid",
        mermaid(spec),
        "```",
        "",
        *_transition_rows(spec),
        "",
        *_refusal_rows(spec),
        "",
    ]


def render(specs: Sequence[MachineSpec] = SPECS) -> str:
    """docs/state-machines.md, generated from `specs` (by default every machine the engine uses)."""
    lines = [
        "# State machines",
        "",
        f"<!-- Generated by `{REGENERATE}` from domain/machines.py. Do not edit by hand: change the tables and",
        f"     run `{REGENERATE}`; tests/unit/test_docs_current.py fails when this file is stale. -->",
        "",
        "Every lifecycle in the engine is one shared, model-less `transitions` Machine per entity type, used as a",
        "transition table: `decide(entity, state, trigger, ctx)` in domain/machines.py looks the trigger up for",
        "the current state, checks the guards (read-only methods of `ctx`, such as `Room.has_capacity`) and",
        "returns the destination state, or raises the domain error named in the table. The handler then records",
        "the events; applying an event only assigns data, so replaying the log never touches a machine (see",
        "[architecture.md](architecture.md) and [events.md](events.md)).",
        "",
        "How to read the tables: a trigger can have several rows from one state; they are tried in order and",
        "the first whose guard holds wins. A trigger used in a state where no row allows it is refused with the",
        "error in the second table; `IllegalTransitionError` (53000) is the fallback when the table names none.",
        "In messages, `<id>` stands for the SID the handler passes and `<state>` for the current state.",
        "",
        "Contents: " + " · ".join(f"[{spec.entity}](#{spec.entity})" for spec in specs),
        "",
    ]
    for spec in specs:
        lines.extend(_section(spec))
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None, *, path: Path = DOC_PATH) -> int:
    parser = argparse.ArgumentParser(prog="python -m domain.machines_doc", description="Render docs/state-machines.md.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the tables")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{path} is out of date with domain/machines.py; run `{REGENERATE}` and commit it.")
            return 1
        print(f"{path} is up to date.")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
