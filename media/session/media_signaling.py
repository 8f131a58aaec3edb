"""A group-room participant's media-signaling (MSP) channels: dominant speaker and network quality.

The SDK asks for channels in `connect.media_signaling` (protocol doc §6); the server grants the
ones it serves in `connected.media_signaling` with a data-channel label each, and opens those
channels itself on the participant's PeerConnection (a server offer adds SCTP when the
PeerConnection has none yet). All messages are JSON text.

    active_speaker    client: {type:'ready'}      server: {type:'active_speaker', participant:<PA sid>}
    network_quality   client: {type:'network_quality', ice, send, recv, audio, video,
                               reportLevel, remoteReportLevel}
                      server: {type:'network_quality', local:<0-5>, remotes:[{sid, level}]}
    render_hints      client: {type:'render_hints', subscriber:{id, hints:[{track, enabled?, render_dimensions?}]}}
                      server: {type:'render_hints', subscriber:{id, hints:[{track, result:'OK'|'UNKNOWN_TRACK'}]}}
    track_switch_off  server: {type:'track_switch_off', off:[MT sids], on:[MT sids]}
    track_priority    client: {type:'track_priority', track, subscribe:<priority>} (accepted, no effect yet)

A hint `enabled: false` switches the track off for that subscriber (the SFU stops forwarding it,
the SDK's RemoteVideoTrack fires `switchedOff`); `enabled: true` switches it on again (from a
keyframe). `render_dimensions` are accepted and not used yet.

Not served (the SDK then leaves those features inert): publisher_hints (adaptive simulcast),
extension_transcriptions.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from domain.ids import ParticipantSid
from media.session.network_quality import level
from media.signaling.messages import DataChannelTransport, MediaSignalingGrant

logger = logging.getLogger(__name__)
SERVED = ("active_speaker", "network_quality", "track_priority", "track_switch_off", "render_hints")

QualityHandler = Callable[[ParticipantSid, int, dict[str, Any]], None]
"""(participant, its level, its report's fields) when a network_quality report arrives."""
HintHandler = Callable[[ParticipantSid, list[dict[str, Any]]], list[dict[str, Any]]]
"""(subscriber, its render hints) → one result per hint ({track, result})."""


class MediaSignaling:
    def __init__(
        self, participant_sid: ParticipantSid, requested: list[str], on_quality: QualityHandler, on_hints: HintHandler
    ) -> None:
        self.participant_sid = participant_sid
        self.grants = {
            name: MediaSignalingGrant(transport=DataChannelTransport(label=f"{name}-{uuid.uuid4().hex[:12]}"))
            for name in requested
            if name in SERVED
        }
        self._on_quality = on_quality
        self._on_hints = on_hints
        self._channels: dict[str, RTCDataChannel] = {}
        self.speaker_ready = False
        self.speaker_told = False
        """The current dominant speaker went out on this channel (once ready)."""

    def wants(self, name: str) -> bool:
        return name in self.grants

    def open(self, pc: RTCPeerConnection) -> bool:
        """Open the granted channels; True when the PeerConnection needs an offer (no SCTP yet)."""
        if not self.grants or self._channels:
            return False
        needs_offer = pc.sctp is None
        logger.info("participant %s: opening media signaling channels %s", self.participant_sid, sorted(self.grants))
        for name, grant in self.grants.items():
            channel = pc.createDataChannel(grant.transport.label)
            channel.on(
                "open", lambda name=name: logger.debug("participant %s: %s channel open", self.participant_sid, name)
            )
            channel.on("message", lambda message, name=name: self._on_message(name, message))
            self._channels[name] = channel
        return needs_offer

    def _on_message(self, name: str, message: str | bytes) -> None:
        try:
            decoded = json.loads(message)
        except ValueError:
            logger.info("participant %s: undecodable %s message", self.participant_sid, name)
            return
        if not isinstance(decoded, dict):
            return
        logger.debug("participant %s: %s message %s", self.participant_sid, name, decoded.get("type"))
        if decoded.get("type") == "ready" and name == "active_speaker":
            logger.debug("participant %s: active_speaker channel ready", self.participant_sid)
            self.speaker_ready = True
            self.speaker_told = False  # a (new) transport on the client: it needs the current speaker
        elif decoded.get("type") == "network_quality" and name == "network_quality":
            self._on_quality(self.participant_sid, level(decoded), decoded)
        elif decoded.get("type") == "render_hints" and name == "render_hints":
            subscriber = decoded.get("subscriber")
            hints = subscriber.get("hints") if isinstance(subscriber, dict) else None
            if isinstance(subscriber, dict) and isinstance(hints, list):
                results = self._on_hints(self.participant_sid, [h for h in hints if isinstance(h, dict)])
                reply = {"type": "render_hints", "subscriber": {"id": subscriber.get("id"), "hints": results}}
                self.send("render_hints", reply)

    def send(self, name: str, payload: dict[str, Any]) -> bool:
        """Send on channel `name`; False when it is not open (nothing sent)."""
        channel = self._channels.get(name)
        if channel is None or channel.readyState != "open":
            return False
        channel.send(json.dumps(payload))
        return True

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
