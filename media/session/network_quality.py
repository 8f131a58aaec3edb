"""The network quality level (0-5) of a participant, from the stats its SDK reports.

twilio-video (with `networkQuality`) sends, on the `network_quality` channel, a summary of its
PeerConnection stats about once a second: `ice` {send, recv, availableSend, rtt}, `send`
{bitrate, rtt}, `recv` {bitrate, fractionLost, jitter}, and the same per `audio`/`video`. The
level is the worse of two scores, as Twilio describes its levels (5 excellent ... 0 broken):

    received packet loss   ≤1 %: 5   ≤3 %: 4   ≤6 %: 3   ≤10 %: 2   ≤20 %: 1   else 0
    round-trip time        ≤150 ms: 5   ≤250: 4   ≤400: 3   ≤600: 2   ≤1000: 1   else 0

Missing numbers count as perfect (a participant that only sends has no receive loss). Round trips
come in seconds from the browser's stats; values above 10 are taken as milliseconds.
"""

from __future__ import annotations

from typing import Any

LOSS_STEPS = (0.01, 0.03, 0.06, 0.10, 0.20)
RTT_STEPS_S = (0.150, 0.250, 0.400, 0.600, 1.000)
BEST = 5


def _score(value: float | None, steps: tuple[float, ...]) -> int:
    if value is None:
        return BEST
    for index, step in enumerate(steps):
        if value <= step:
            return BEST - index
    return 0


def _number(block: Any, key: str) -> float | None:
    value = block.get(key) if isinstance(block, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def level(inputs: dict[str, Any]) -> int:
    """The level for one `network_quality` message from a client."""
    receiving = [inputs.get("recv")] + [(inputs.get(kind) or {}).get("recv") for kind in ("audio", "video")]
    losses = [loss for block in receiving if (loss := _number(block, "fractionLost")) is not None]
    rtts = [rtt for block in (inputs.get("ice"), inputs.get("send")) if (rtt := _number(block, "rtt")) is not None]
    rtt = max(rtts) if rtts else None
    if rtt is not None and rtt > 10:
        rtt /= 1000.0
    return min(_score(max(losses) if losses else None, LOSS_STEPS), _score(rtt, RTT_STEPS_S))
