"""Partitions of the log by aggregate, so the audit can use every core.

A room belongs to partition (position of its SID's last hex digit + 1) mod n; the room-name
index and accounts belong to partition 0. Every room's events, and every read-model row about
it, fall in one partition, so each partition can be rebuilt and checked on its own. The SQL
forms of this function live beside the recorders and the read model (same arithmetic).
"""

from __future__ import annotations

HEX = "0123456789abcdef"


def partition_of(aggregate_id: str, n: int) -> int:
    if n == 1 or not aggregate_id.startswith("RM"):
        return 0
    return (HEX.find(aggregate_id[-1].lower()) + 1) % n
