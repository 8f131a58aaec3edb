"""Signaling for the unmodified twilio-video 2.x browser SDK: the transport-level foundation.

The wire protocol is described in /work/shared/reference/twilio-signaling-protocol.md
(peer-to-peer specifics in twilio-signaling-p2p.md); the modules follow its layers:

    tcmp.py      TCMP over an aiohttp WebSocket: handshake, msg in/out, heartbeats, busy, close codes (§1)
    frame.py     the TCMP frames themselves (hello, welcome, msg, heartbeat, busy, bad, bye) (§1.1, §1.2)
    messages.py  RSP v2 messages and state blocks as msgspec Structs, and their codecs (§2, §3, §6)
    sdp.py       the SDP facts a server needs: mid → msid track ids, directions, ufrag; rewrites (§2.3, §3)
    route.py     `signaling_route(handler)`: `/signaling` upgraded to a `TcmpConnection` for a session
    errors.py    the errors, with the Twilio codes the SDK knows (§7)

The session layer (tokens, rooms, NATS commands and events, negotiation) is built on top of these
and is not here.
"""
