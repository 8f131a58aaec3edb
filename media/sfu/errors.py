"""Errors of the forwarding plane.

SfuError
├── UnknownParticipantError   the participant was never added to the router
├── UnknownTrackError         no published track has this id
└── UnknownMidError           the participant's PeerConnection has no transceiver with this mid
"""

from __future__ import annotations


class SfuError(Exception):
    """Base of the forwarding plane's errors."""


class UnknownParticipantError(SfuError):
    def __init__(self, participant_sid: str) -> None:
        self.participant_sid = participant_sid
        super().__init__(f"participant {participant_sid} is not in this room's router")


class UnknownTrackError(SfuError):
    def __init__(self, track_sid: str) -> None:
        self.track_sid = track_sid
        super().__init__(f"no published track {track_sid} in this room's router")


class UnknownMidError(SfuError):
    def __init__(self, participant_sid: str, mid: str) -> None:
        self.participant_sid = participant_sid
        self.mid = mid
        super().__init__(f"participant {participant_sid}'s PeerConnection has no transceiver with mid {mid!r}")
