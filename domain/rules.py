"""The subscribe-rule and recording-rule algebra (Twilio's Track Subscriptions and Recording Rules).

Rules are evaluated in order starting from the empty set: `include` adds the tracks the rule
matches, `exclude` removes them. Filters within one rule are ANDed. A participant's own tracks
never match its subscribe rules. Each update replaces all rules, and the result is re-evaluated
whenever tracks, participants or rules change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import msgspec

from domain import errors

MAX_RULES: Final = 20
_FILTERS: Final = ("all", "kind", "publisher", "track")


class Rule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    type: Literal["include", "exclude"]
    all: bool | None = None
    kind: str | None = None
    publisher: str | None = None
    track: str | None = None
    priority: str | None = None

    def as_twilio(self) -> dict[str, object]:
        """The rule as Twilio returns it (every filter key present, absent ones null)."""
        return {
            "type": self.type,
            "all": self.all,
            "publisher": self.publisher,
            "track": self.track,
            "kind": self.kind,
            "priority": self.priority,
        }


INCLUDE_ALL: Final = (Rule(type="include", all=True),)
EXCLUDE_ALL: Final = (Rule(type="exclude", all=True),)


class TrackFacts(msgspec.Struct, frozen=True):
    """What a rule can match a published track on."""

    sid: str
    name: str
    kind: str
    publisher_sid: str
    publisher_identity: str


def _rules_list(raw: object) -> list[object]:
    if isinstance(raw, dict) and set(raw) == {"rules"}:
        raw = raw["rules"]
    if not isinstance(raw, list):
        raise ValueError("rules must be a JSON array or an object with a 'rules' array")
    if not raw:
        raise ValueError("rules must not be empty")
    if len(raw) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} rules are allowed, got {len(raw)}")
    return raw


def _parse_rule(raw: object, kinds: tuple[str, ...], allow_priority: bool) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError("each rule must be a JSON object")
    allowed = {"type", *_FILTERS} | ({"priority"} if allow_priority else set())
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown rule field(s): {sorted(unknown)}")
    rule_type = raw.get("type")
    if rule_type not in ("include", "exclude"):
        raise ValueError(f"rule type must be 'include' or 'exclude', got {rule_type!r}")
    present = [name for name in _FILTERS if raw.get(name) is not None]
    if not present:
        raise ValueError("a rule needs at least one filter (all, kind, publisher, track)")
    if "all" in present:
        if raw["all"] is not True:
            raise ValueError("filter 'all' only accepts true")
        if len(present) > 1:
            raise ValueError("filter 'all' cannot be combined with other filters")
    kind = raw.get("kind")
    if kind is not None and kind not in kinds:
        raise ValueError(f"filter 'kind' must be one of {list(kinds)}, got {kind!r}")
    for name in ("publisher", "track"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"filter {name!r} must be a non-empty string")
    priority = raw.get("priority")
    if priority is not None and priority not in ("low", "standard", "high"):
        raise ValueError(f"priority must be low, standard or high, got {priority!r}")
    return Rule(
        type=rule_type,
        all=True if "all" in present else None,
        kind=kind,
        publisher=raw.get("publisher"),
        track=raw.get("track"),
        priority=priority,
    )


def parse_subscribe_rules(raw: object) -> tuple[Rule, ...]:
    """Validate subscribe rules (53215 on any fault; the active rules stay unchanged)."""
    try:
        return tuple(_parse_rule(r, ("audio", "video", "data"), True) for r in _rules_list(raw))
    except ValueError as exc:
        raise errors.SubscribeRulesInvalidError(str(exc)) from exc


def parse_recording_rules(raw: object) -> tuple[Rule, ...]:
    """Validate recording rules (53120 on any fault; data tracks are never recorded)."""
    try:
        return tuple(_parse_rule(r, ("audio", "video"), False) for r in _rules_list(raw))
    except ValueError as exc:
        raise errors.RecordingRulesInvalidError(str(exc)) from exc


def matches(rule: Rule, track: TrackFacts) -> bool:
    if rule.all:
        return True
    if rule.kind is not None and rule.kind != track.kind:
        return False
    if rule.publisher is not None and rule.publisher not in (track.publisher_sid, track.publisher_identity):
        return False
    return rule.track is None or rule.track in (track.sid, track.name)


def evaluate(rules: Iterable[Rule], tracks: Iterable[TrackFacts], *, own_sid: str | None = None) -> set[str]:
    """The SIDs of the tracks selected by `rules`, never those published by `own_sid`."""
    rules = tuple(rules)
    if len(rules) == 1 and rules[0].all:  # the default rule sets: everything, or nothing
        return {t.sid for t in tracks if t.publisher_sid != own_sid} if rules[0].type == "include" else set()
    candidates = [t for t in tracks if t.publisher_sid != own_sid]
    selected: set[str] = set()
    for rule in rules:
        hits = {t.sid for t in candidates if matches(rule, t)}
        if rule.type == "include":
            selected |= hits
        else:
            selected -= hits
    return selected
