"""The signaling session layer: twilio-video clients in group rooms, driving the SFU.

    signaling_service.py    `SignalingService.handle`: the `/signaling` handler (connect, sync,
                            update, disconnect), sessions kept across socket losses
    participant_session.py  one participant's PeerConnection and its negotiation
    media_room.py           one room in this process: router, sessions, the room's event stream
    room_view.py            participants and tracks as clients are told, with revisions
    engine_link.py          commands, queries and events over NATS (the only way to the engine)
    ice_hosts.py            the ICE host-address setting (loopback for single-machine setups)
    errors.py               EngineError, SessionError

Not yet: peer-to-peer and go rooms, data tracks, media-signaling channels (dominant speaker,
network quality, bandwidth profiles), TURN credentials in `iced`, server-side ICE restarts.
"""
