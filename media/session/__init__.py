"""The signaling session layer: twilio-video clients in rooms of every type.

    signaling_service.py    `SignalingService.handle`: the `/signaling` handler (connect, sync,
                            update, disconnect), sessions kept across socket losses
    participant_session.py  one participant's socket, publications and `subscribed` block
    media_room.py           one room in this process: sessions, the room's event stream, topology
    topology.py             how media reaches participants: the hooks both topologies serve
    sfu_topology.py         group rooms: the SFU router, one `SfuPeer` per participant
    sfu_peer.py             a participant's PeerConnection to the SFU and its negotiation
    mesh_topology.py        peer-to-peer and go rooms: relayed links between the clients
    room_signals.py         group rooms' dominant speaker and network quality over the MSP channels
    media_signaling.py      one participant's MSP channels (active_speaker, network_quality)
    dominant_speaker.py     the detector, from RFC 6464 audio levels
    network_quality.py      a participant's level 0-5 from its SDK's stats report
    ice_servers.py          STUN/TURN servers and TURN REST API credentials for `iced`
    room_view.py            participants and tracks as clients are told, with revisions
    engine_link.py          commands, queries and events over NATS (the only way to the engine)
    stats.py                what the media plane holds, for /metrics
    ice_hosts.py            the ICE host-address setting (loopback for single-machine setups)
    errors.py               EngineError, SessionError

Not yet: bandwidth profiles (track priority, switch-off, render hints), adaptive simulcast,
server-side ICE restarts.
"""
