"""The dominant-speaker detector and the network-quality level, fed the numbers the SFU and SDK give."""

from __future__ import annotations

from domain.ids import ParticipantSid
from media.session.dominant_speaker import DominantSpeaker
from media.session.network_quality import level

ALICE, BOB = ParticipantSid("PAalice"), ParticipantSid("PAbob")
LOUD, QUIET, SILENT = 30, 60, 127  # -dBov


def run(detector: DominantSpeaker, levels: dict[ParticipantSid, int], start: float, ticks: int) -> list[ParticipantSid]:
    changes = []
    for n in range(ticks):
        now = start + n * 0.1
        for sid, heard in levels.items():
            detector.observe(sid, heard, now)
        if (changed := detector.tick(now)) is not None:
            changes.append(changed)
    return changes


def test_the_only_voice_becomes_the_dominant_speaker_after_the_hold() -> None:
    detector = DominantSpeaker()
    assert run(detector, {ALICE: LOUD, BOB: SILENT}, 0.0, 1) == []
    assert run(detector, {ALICE: LOUD, BOB: SILENT}, 0.1, 1) == [ALICE]
    assert detector.current == ALICE


def test_silence_keeps_the_last_speaker() -> None:
    detector = DominantSpeaker()
    run(detector, {ALICE: LOUD, BOB: SILENT}, 0.0, 5)
    assert run(detector, {ALICE: SILENT, BOB: SILENT}, 1.0, 30) == []
    assert detector.current == ALICE


def test_a_louder_voice_takes_over_and_a_slightly_louder_one_does_not() -> None:
    detector = DominantSpeaker()
    run(detector, {ALICE: QUIET, BOB: SILENT}, 0.0, 5)
    assert run(detector, {ALICE: QUIET, BOB: QUIET - 3}, 1.0, 10) == [], "within the margin"
    assert run(detector, {ALICE: QUIET, BOB: LOUD}, 2.0, 10) == [BOB]


def test_a_speaker_who_falls_silent_is_replaced_once_the_window_forgets_them() -> None:
    detector = DominantSpeaker(window_s=1.0)
    run(detector, {ALICE: LOUD, BOB: SILENT}, 0.0, 5)
    changes = run(detector, {ALICE: SILENT, BOB: QUIET}, 1.0, 20)
    assert changes == [BOB]


def test_a_speaker_who_leaves_is_forgotten() -> None:
    detector = DominantSpeaker()
    run(detector, {ALICE: LOUD}, 0.0, 5)
    detector.forget(ALICE)
    assert detector.current is None
    assert run(detector, {BOB: LOUD}, 1.0, 3) == [BOB]


def test_network_quality_is_the_worse_of_loss_and_round_trip() -> None:
    clean = {"ice": {"rtt": 0.02}, "recv": {"fractionLost": 0.0}, "audio": {"recv": {"fractionLost": 0}}}
    assert level(clean) == 5
    assert level({"recv": {"fractionLost": 0.05}, "ice": {"rtt": 0.02}}) == 3
    assert level({"video": {"recv": {"fractionLost": 0.5}}}) == 0
    assert level({"ice": {"rtt": 0.3}}) == 3
    assert level({"send": {"rtt": 300}}) == 3, "milliseconds are recognised"
    assert level({}) == 5, "a report without numbers counts as perfect"
    assert level({"recv": {"fractionLost": None}, "ice": "garbage"}) == 5
