"""Peer-to-peer and go rooms: every pair of participants shares one relayed PeerConnection.

No media reaches this process: the server gives each pair a PeerConnection id that both
browsers use, and relays their descriptions and ICE candidates between the two ends verbatim
(the SDP carries the browsers' DTLS fingerprints, so media stays end to end encrypted).
/work/shared/reference/twilio-signaling-p2p.md describes the scheme; the section numbers below
are its own.

* **Joining** (§3.2, §3.3): the joiner's connect offer goes to the first participant already in
  the room (who answers it under that id); for each further participant the joiner gets a
  `create-offer` (revision 1) under a fresh UUID. Alone in the room, its connect PeerConnection
  is closed at once.
* **Glare** (§3.5): while an offer from one end of a link is outstanding, an offer from the
  other end is dropped; that end rolls back, answers, and offers again.
* **Duplicates** (§9.10): a description is relayed once per (link, sender, type, revision).
* **Subscriptions** (§5): `subscribed` names each track of a linked peer by the publisher's own
  track id (its SDP msid and DataTrack label), for the tracks the engine subscribed it to.
* **A lost socket** (§3.8, §3.9): relays to the participant wait in an outbox for `peer_loss_grace_s`;
  if it is back by then (`sync`), `synced` keeps its links and the outbox is flushed. Otherwise its
  links are closed (`close` to the peers, and `subscribed` without its tracks), so that a
  two-party survivor stays connected; when it returns it is linked again under fresh ids
  (`create-offer`), and `subscribed` drops and re-adds the tracks on both ends so the SDK binds
  them to the new PeerConnection.
* **A client `close`** (§9.9, its ICE reconnect timed out): relayed to the peer and the link dropped;
  if both ends are still here they are linked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msgspec import UNSET, UnsetType

from domain.ids import ParticipantSid, TrackSid
from media.signaling.messages import (
    PeerConnectionId,
    PeerConnectionState,
    RoomOptions,
    ServerUpdate,
    SessionDescription,
)

if TYPE_CHECKING:
    from media.session.media_room import MediaRoom
    from media.session.participant_session import ParticipantSession

logger = logging.getLogger(__name__)
PEER_LOSS_GRACE_S = 2.0
"""Below the ~5 s after which a two-party survivor's SDK gives up on the media (§3.9)."""
CLOSE = SessionDescription(type="close")


@dataclass
class Link:
    """The PeerConnection that two participants share, as the server relays it."""

    id: PeerConnectionId
    ends: tuple[ParticipantSid, ParticipantSid]
    offering: tuple[ParticipantSid, int] | None = None
    """The end whose offer was relayed and not yet answered, and its revision."""
    relayed: set[tuple[ParticipantSid, str, int]] = field(default_factory=set)

    def other(self, sid: ParticipantSid) -> ParticipantSid:
        return self.ends[1] if self.ends[0] == sid else self.ends[0]

    def admit(self, sender: ParticipantSid, description: SessionDescription) -> bool:
        """Whether to relay `description` from `sender` (glare and duplicates are dropped)."""
        revision = description.revision
        if description.type not in ("offer", "answer") or not isinstance(revision, int):
            return False
        key = (sender, description.type, revision)
        if key in self.relayed:
            return False
        if description.type == "offer":
            if self.offering is not None and self.offering[0] != sender:
                logger.info("link %s: offer r%d from %s dropped (glare)", self.id, revision, sender)
                return False
            self.offering = (sender, revision)
        elif self.offering is not None and self.offering[0] != sender and self.offering[1] == revision:
            self.offering = None
        self.relayed.add(key)
        return True


class MeshTopology:
    """The links of one peer-to-peer or go room among its local sessions."""

    def __init__(self, room: MediaRoom, peer_loss_grace_s: float = PEER_LOSS_GRACE_S) -> None:
        self.room = room
        self.links: dict[PeerConnectionId, Link] = {}
        self._grace_s = peer_loss_grace_s
        self._connect_offers: dict[ParticipantSid, PeerConnectionState] = {}
        self._outbox: dict[ParticipantSid, list[PeerConnectionState]] = {}
        self._losses: dict[ParticipantSid, asyncio.Task[None]] = {}

    def options(self, session_timeout_s: int) -> RoomOptions:
        return RoomOptions(session_timeout=session_timeout_s)  # no media_region: room.mediaRegion is null (§4)

    def links_of(self, sid: ParticipantSid) -> list[Link]:
        return [link for link in self.links.values() if sid in link.ends]

    def peers_of(self, sid: ParticipantSid) -> set[ParticipantSid]:
        return {link.other(sid) for link in self.links_of(sid)}

    def subscriptions_of(self, sid: ParticipantSid) -> dict[TrackSid, str]:
        """The tracks of linked peers that the engine subscribed `sid` to, by the publisher's track id."""
        peers = self.peers_of(sid)
        found: dict[TrackSid, str] = {}
        for track_sid in sorted(self.room.wanted_by(sid)):
            publisher = self.room.sessions.get(self.room.publisher_of(track_sid) or ParticipantSid(""))
            track_id = publisher.track_id_of(track_sid) if publisher is not None and publisher.sid in peers else None
            if track_id is not None:
                found[track_sid] = track_id
        return found

    # --- joining ------------------------------------------------------------------------------------

    async def join(self, session: ParticipantSession, offer: PeerConnectionState | None) -> list[PeerConnectionState]:
        others = self._linkable(session)
        if offer is not None and others:
            self._add_link(offer.id, session.sid, others.pop(0).sid)
            if not isinstance(offer.description, UnsetType):
                self._connect_offers[session.sid] = offer
        states = [self._create_offer(session.sid, other.sid) for other in others]
        if offer is not None and not self.links_of(session.sid):
            states.append(PeerConnectionState(id=offer.id, description=CLOSE))  # nobody to talk to (§3.1)
        return states

    async def joined(self, session: ParticipantSession) -> None:
        offer = self._connect_offers.pop(session.sid, None)
        if offer is not None:
            await self.on_peer_connections(session, [offer])
        late = [self._create_offer(session.sid, other.sid) for other in self._linkable(session)]
        if late:  # peers that finished connecting while this session did
            await self._relay(session.sid, late)
        for peer in self.peers_of(session.sid):
            await self._push_subscribed(peer)
        await self._push_subscribed(session.sid)

    def _linkable(self, session: ParticipantSession) -> list[ParticipantSession]:
        """The other ready, attached sessions not linked to `session` yet, in the order they joined."""
        linked = self.peers_of(session.sid)
        return [
            other
            for other in self.room.sessions.values()
            if other is not session and other.ready and other.attached and other.sid not in linked
        ]

    def _add_link(self, pc_id: PeerConnectionId, a: ParticipantSid, b: ParticipantSid) -> Link:
        link = self.links[pc_id] = Link(pc_id, (a, b))
        logger.info("room %s: link %s between %s and %s", self.room.room_sid, pc_id, a, b)
        return link

    def _create_offer(self, offerer: ParticipantSid, answerer: ParticipantSid) -> PeerConnectionState:
        """A new link; the entry that asks `offerer` to offer on it (revision 1 on a new PC, §9.3)."""
        link = self._add_link(PeerConnectionId(str(uuid.uuid4())), offerer, answerer)
        return PeerConnectionState(id=link.id, description=SessionDescription(type="create-offer", revision=1))

    # --- relaying -----------------------------------------------------------------------------------

    async def on_peer_connections(self, session: ParticipantSession, entries: list[PeerConnectionState]) -> None:
        for entry in entries:
            link = self.links.get(entry.id)
            if link is None or session.sid not in link.ends:
                continue  # a closed or unknown id: relaying it would make the peer open a PeerConnection (§9.1)
            description = entry.description
            if not isinstance(description, UnsetType) and description.type == "close":
                await self._client_closed(link, session.sid)
                continue
            if not isinstance(description, UnsetType) and not link.admit(session.sid, description):
                description = UNSET
            if isinstance(description, UnsetType) and isinstance(entry.ice, UnsetType):
                continue
            relayed = PeerConnectionState(id=link.id, description=description, ice=entry.ice)
            await self._relay(link.other(session.sid), [relayed])

    async def _relay(self, sid: ParticipantSid, states: list[PeerConnectionState]) -> None:
        session = self.room.sessions.get(sid)
        if session is None or session.ended:
            return
        if not session.attached:
            self._outbox.setdefault(sid, []).extend(states)
            return
        await session.send(ServerUpdate(peer_connections=states))

    async def _push_subscribed(self, sid: ParticipantSid) -> None:
        session = self.room.sessions.get(sid)
        if session is None or not session.ready or not session.attached:
            return  # `synced` will carry it
        block = session.subscribed_changed()
        if block is not None:
            await session.send(ServerUpdate(subscribed=block))

    async def _client_closed(self, link: Link, sender: ParticipantSid) -> None:
        other = link.other(sender)
        logger.info("room %s: %s closed link %s", self.room.room_sid, sender, link.id)
        await self._unlink(link, tell=other)
        sender_session, other_session = self.room.sessions.get(sender), self.room.sessions.get(other)
        if sender_session is not None and other_session is not None and other_session.attached:
            await self._relay(sender, [self._create_offer(sender, other)])
            await self._push_subscribed(sender)
            await self._push_subscribed(other)

    async def _unlink(self, link: Link, tell: ParticipantSid | None) -> None:
        """Drop the link; `tell` gets its `close`; both ends' `subscribed` lose each other's tracks."""
        self.links.pop(link.id, None)
        if tell is not None:
            await self._relay(tell, [PeerConnectionState(id=link.id, description=CLOSE)])
        for end in link.ends:
            await self._push_subscribed(end)

    # --- subscriptions ------------------------------------------------------------------------------

    async def subscriptions_changed(self, sid: ParticipantSid) -> None:
        await self._push_subscribed(sid)

    async def published(self, session: ParticipantSession) -> None:
        for peer in self.peers_of(session.sid):
            await self._push_subscribed(peer)

    async def track_unpublished(self, track_sid: TrackSid) -> None:
        pass  # the engine's track_unsubscribed events change the subscribers' `subscribed`

    # --- sockets ------------------------------------------------------------------------------------

    def lost(self, session: ParticipantSession) -> None:
        if session.sid not in self._losses:
            self._losses[session.sid] = asyncio.create_task(self._close_after_grace(session.sid))

    async def _close_after_grace(self, sid: ParticipantSid) -> None:
        await asyncio.sleep(self._grace_s)  # the grace itself: a socket back by then keeps its links
        self._losses.pop(sid, None)
        self._outbox.pop(sid, None)
        for link in self.links_of(sid):
            await self._unlink(link, tell=link.other(sid))

    async def resync(self, session: ParticipantSession) -> list[PeerConnectionState]:
        loss = self._losses.pop(session.sid, None)
        if loss is not None:
            loss.cancel()
        return [PeerConnectionState(id=link.id) for link in self.links_of(session.sid)]

    async def resynced(self, session: ParticipantSession) -> None:
        waiting = self._outbox.pop(session.sid, [])
        if waiting:
            await session.send(ServerUpdate(peer_connections=waiting))
        relinked = [self._create_offer(session.sid, other.sid) for other in self._linkable(session)]
        if relinked:
            await self._relay(session.sid, relinked)
        for peer in self.peers_of(session.sid):
            await self._push_subscribed(peer)
        await self._push_subscribed(session.sid)

    # --- the end ------------------------------------------------------------------------------------

    async def leave(self, session: ParticipantSession) -> None:
        loss = self._losses.pop(session.sid, None)
        if loss is not None:
            loss.cancel()
        self._outbox.pop(session.sid, None)
        self._connect_offers.pop(session.sid, None)
        for link in self.links_of(session.sid):
            await self._unlink(link, tell=link.other(session.sid))

    async def close(self) -> None:
        for loss in self._losses.values():
            loss.cancel()
        for loss in self._losses.values():
            with contextlib.suppress(asyncio.CancelledError):
                await loss
        self._losses.clear()
        self.links.clear()
