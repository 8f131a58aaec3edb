"""What one process's media plane holds, for `/metrics`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaStats:
    sessions_by_room_type: dict[str, int]
    """Signaling sessions in this process, by the type of their room."""
    peer_connections: int
    """PeerConnections that end at this process's SFU (none for peer-to-peer and go rooms)."""
    rtp_packets_received: int
    """RTP packets the SFU received from publishers since the process started."""
