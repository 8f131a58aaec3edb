"""One participant's signaling session: its socket, its publications, what it is told it receives.

The session outlives sockets: when the WebSocket drops, the SDK reconnects with `sync` and the
same session id (protocol doc §4). How media reaches the participant is the room's topology
(an SFU PeerConnection in group rooms, relayed peer connections in peer-to-peer and go rooms);
the session forwards the client's `peer_connections` entries to it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from msgspec import UNSET

from domain.ids import ParticipantSid, TrackSid
from media.signaling.connection import Connection
from media.signaling.errors import SignalingError
from media.signaling.messages import (
    ClientUpdate,
    LocalTrackState,
    MediaSignalingGrant,
    Published,
    PublishedTrack,
    ServerMessage,
    SessionId,
    Subscribed,
    SubscribedTrack,
    TrackError,
    TrackId,
)

if TYPE_CHECKING:
    from media.session.media_room import MediaRoom

logger = logging.getLogger(__name__)


class ParticipantSession:
    """A connected participant's socket, published tracks and `published`/`subscribed` blocks."""

    def __init__(self, session_id: SessionId, room: MediaRoom, participant_sid: ParticipantSid, identity: str) -> None:
        self.session_id = session_id
        self.room = room
        self.sid = participant_sid
        self.identity = identity
        self.conn: Connection | None = None
        self.ready = False
        """True once `connected` was sent: updates and offers may go out."""
        self.ended = False
        self.published: dict[TrackId, TrackSid] = {}
        self.failed: dict[TrackId, TrackError] = {}
        """Publications the engine refused (e.g. video in an audio-only room, 53125): `failed` in `published`."""
        self.local_tracks: dict[TrackId, LocalTrackState] = {}
        self.requested_media_signaling: list[str] = []
        """The MSP channels the connect asked for (`connect.media_signaling`)."""
        self.media_signaling: dict[str, MediaSignalingGrant] = {}
        """The ones the room's topology granted (`connected.media_signaling`)."""
        self._published_revision = 1
        self._subscribed_sent: dict[TrackSid, str] = {}
        self._subscribed_revision = 1

    def __str__(self) -> str:
        return f"room {self.room.room_sid} participant {self.sid}"

    @property
    def attached(self) -> bool:
        conn = self.conn
        return conn is not None and not conn.closed

    # --- messages out -----------------------------------------------------------------------------

    async def send(self, message: ServerMessage) -> None:
        """Send if a socket is attached; while detached the next `synced` carries the state."""
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            await conn.send(message)
        except SignalingError as exc:
            logger.info("%s: could not send %s: %s", self, type(message).__name__, exc)

    def record_published(self, track_id: TrackId, track_sid: TrackSid) -> None:
        self.published[track_id] = track_sid
        self.failed.pop(track_id, None)  # published again after a refusal
        self._published_revision += 1

    def record_failed(self, track_id: TrackId, code: int, message: str) -> None:
        """The SDK's `publishTrack` rejects with this code and fires `trackPublicationFailed`."""
        self.failed[track_id] = TrackError(code=code, message=message)
        self._published_revision += 1

    def track_id_of(self, track_sid: TrackSid) -> TrackId | None:
        """The client's id of its publication `track_sid` (its SDP msid and DataTrack label)."""
        for track_id, sid in self.published.items():
            if sid == track_sid:
                return track_id
        return None

    def published_block(self) -> Published:
        tracks = [PublishedTrack(id=track_id, sid=sid, state="ready") for track_id, sid in self.published.items()]
        tracks += [PublishedTrack(id=track_id, state="failed", error=error) for track_id, error in self.failed.items()]
        return Published(revision=self._published_revision, tracks=tracks)

    def subscribed_block(self) -> Subscribed:
        """What the participant receives now; the revision rises when it changed."""
        current = self.room.subscriptions_of(self.sid)
        if current != self._subscribed_sent:
            self._subscribed_sent = current
            self._subscribed_revision += 1
        tracks = [SubscribedTrack(sid=sid, id=TrackId(track_id)) for sid, track_id in current.items()]
        return Subscribed(revision=self._subscribed_revision, tracks=tracks)

    def subscribed_changed(self) -> Subscribed | None:
        """The `subscribed` block if it changed since it was last built, else None."""
        before = self._subscribed_revision
        block = self.subscribed_block()
        return block if block.revision != before else None

    # --- the client's updates -----------------------------------------------------------------------

    async def on_update(self, update: ClientUpdate) -> None:
        """Publishes/unpublishes/enables from the track diff, then the peer connections' entries."""
        if self.ended:
            return
        await self.room.sync_local_tracks(self, update.participant.tracks)
        if update.peer_connections is not UNSET and not self.ended:
            await self.room.topology.on_peer_connections(self, update.peer_connections)
