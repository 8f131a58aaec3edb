"""How media reaches a room's participants: the SFU (group rooms) or direct links (peer-to-peer, go).

The room (media_room.py) keeps what every room type shares: sessions, participants from the
engine's events, publications, the subscriptions the engine decided. Its topology does the rest,
at these moments of a session's life:

    connect   join(session, offer_pc) → the `peer_connections` of `connected`; joined(session) after it
    update    on_peer_connections(session, entries)
    events    subscriptions_changed(sid) · published(session) · track_unpublished(track_sid)
    sockets   lost(session) when the socket drops · resync(session) → `synced`'s `peer_connections`,
              resynced(session) after it
    the end   leave(session) · close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from domain.ids import ParticipantSid, TrackSid
from media.signaling.messages import PeerConnectionState, RoomOptions

if TYPE_CHECKING:
    from media.session.participant_session import ParticipantSession


class Topology(Protocol):
    def options(self, session_timeout_s: int) -> RoomOptions:
        """`connected.options` for this room type."""
        ...

    def subscriptions_of(self, sid: ParticipantSid) -> dict[TrackSid, str]:
        """Track SID → the `id` the client matches it by, for what `sid` receives now."""
        ...

    async def join(self, session: ParticipantSession, offer: PeerConnectionState | None) -> list[PeerConnectionState]:
        """A participant connects with the connect message's peer connection (if any)."""
        ...

    async def joined(self, session: ParticipantSession) -> None:
        """`connected` went out: the session's peers may be told about it."""
        ...

    async def on_peer_connections(self, session: ParticipantSession, entries: list[PeerConnectionState]) -> None:
        """Descriptions and candidates from the client."""
        ...

    async def subscriptions_changed(self, sid: ParticipantSid) -> None:
        """The engine subscribed or unsubscribed `sid` to a track."""
        ...

    async def published(self, session: ParticipantSession) -> None:
        """`session` got a new MT sid for one of its tracks."""
        ...

    async def track_unpublished(self, track_sid: TrackSid) -> None:
        """The track is gone from the room."""
        ...

    def lost(self, session: ParticipantSession) -> None:
        """The session's socket dropped; it may come back with `sync`."""
        ...

    async def resync(self, session: ParticipantSession) -> list[PeerConnectionState]:
        """The session came back: the peer connections it keeps (`synced` closes the others)."""
        ...

    async def resynced(self, session: ParticipantSession) -> None:
        """`synced` went out."""
        ...

    async def leave(self, session: ParticipantSession) -> None:
        """The session is over: drop its media."""
        ...

    async def close(self) -> None:
        """The room is over in this process."""
        ...
