"""Every private aiortc hook the SFU relies on, in one place.

aiortc has no API for forwarding RTP without decoding (reference/media-sfu-aiortc.md §2.1), so
the SFU reaches into its internals. Each hook below names the aiortc 1.16.0 source it depends on;
aiortc is pinned exactly in pyproject.toml and tests/unit/test_sfu_hooks.py fails when an upgrade
moves any of them. Nothing outside this module touches a private aiortc name. The lean send path
also relies on aioice 0.13.0 (the nominated candidate pair) and pylibsrtp 1.0.0 (its libsrtp
binding), which aiortc does not pin: `check_version` and `check_send_path_versions` refuse any
other version.

Receive side (a publisher's `RTCRtpReceiver` on the SFU):

* `take_over_rtp`: replaces `RTCRtpReceiver._handle_rtp_packet` (rtcrtpreceiver.py, called by
  `RTCDtlsTransport._handle_rtp_data`, rtcdtlstransport.py) per instance by a lean one that keeps
  aiortc's receive statistics (`__remote_streams`, for RRs), `__active_ssrc`, RTX unwrapping
  (`__codecs`, `__rtx_ssrc`) and NACKs (`__nack_generator`, `_send_rtcp_nack`), then hands the
  media packet to the SFU. aiortc's REMB estimator, depayloading, jitter buffer and decoder queue
  are skipped: the decoder thread never gets a frame.
* `send_pli`, `send_remb`: `RTCRtpReceiver._send_rtcp_pli` and `_send_rtcp` with the receiver's
  `__rtcp_ssrc` (set by `_set_rtcp_ssrc` in `RTCPeerConnection.__createTransceiver`).

Send side (a subscriber's `RTCRtpSender` on the SFU), `SenderInjector`:

* sends forwarded packets itself, synchronously: serialized with the sender's `_ssrc`, `__mid`
  and the extension ids of its `__rtp_header_extensions_map` (`HeaderExtensionsMap.__ids`), SRTP
  with the DTLS transport's `_tx_srtp` (libsrtp's `srtp_protect` on the pylibsrtp `Session`'s
  context, `_srtp`, `_cdata`), sent on the ICE connection's nominated pair
  (`RTCIceTransport._connection`, aioice `Connection._nominated`, `CandidatePair.protocol.transport`,
  `remote_addr`), all in one C call (media.sfu.wire): what `RTCDtlsTransport._send_rtp` and
  aioice's `Connection.sendto` do, without their coroutines. It keeps the DTLS transport's
  `__tx_bytes`, `__tx_packets` (checked against `_state`) and the sender's SR counters
  `__ntp_timestamp`, `__rtp_timestamp`, `__octet_count`, `__packet_count` that `_run_rtcp` reports;
* overrides `_retransmit` to answer NACKs from the SFU's own, longer history, wrapped in RTX with
  `__rtx_payload_type`, `__rtx_sequence_number` and `_rtx_ssrc` like the original;
* overrides `_send_keyframe` (called by `_handle_rtcp_packet` on PLI/FIR; it only sets
  `__force_keyframe`, which does nothing for forwarded packets) to ask the publisher instead;
* wraps `_handle_rtcp_packet` to read the subscriber's REMB;
* `negotiated_codecs` reads `RTCRtpTransceiver._codecs` to learn the subscriber's payload types,
  `sender_started` reads `__started` (set by `RTCRtpSender.send`).

`defer_unoffered` resets `RTCRtpTransceiver._offerDirection` and `_set_mline_index` of a
transceiver a remote offer did not include (the client answering in peer-to-peer rooms).

`start_negotiated_media` re-runs `RTCPeerConnection.__connect` once connected (a race: media
negotiated while DTLS was connecting is otherwise never started). `bundle_policy` reads
`RTCPeerConnection.__configuration`: the router requires MAX_BUNDLE.

Negotiation (`install`, process-wide): `RTCPeerConnection.createOffer` (rtcpeerconnection.py)
resets every transceiver's `_codecs` and `_headerExtensions` from the static `CODECS` and
`HEADER_EXTENSIONS` tables, renumbering payload types and extmap ids of m-lines the client already
negotiated (twilio-signaling-feasibility.md, "what was hard" 3). The fix keeps the negotiated
values of existing m-lines and aligns new m-lines with them, by wrapping `createOffer` and the
module-level `create_media_description_for_transceiver` it calls.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import aioice
import aiortc
import pylibsrtp
from aioice.ice import CandidatePair, Connection
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import clock as aiortc_clock
from aiortc import rtcpeerconnection as aiortc_pc
from aiortc.codecs import is_rtx
from aiortc.exceptions import InvalidStateError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    AnyRtcpPacket,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
    wrap_rtx,
)

from media.sfu.wire import Wire, supports
from media.sfu.wire import connect as wire_connect

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"  # the send path reads aioice's nominated pair (see SenderInjector)
PYLIBSRTP_VERSION = "1.0.0"  # ... and calls libsrtp through pylibsrtp's binding (media.sfu.wire)

# Name-mangled attributes, spelled once.
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_RECEIVER_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
_RECEIVER_ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"
_RECEIVER_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"
_EXT_MAP_IDS = "_HeaderExtensionsMap__ids"
_PC_CONFIGURATION = "_RTCPeerConnection__configuration"
_PC_CONNECT = "_RTCPeerConnection__connect"
_SENDER_STARTED = "_RTCRtpSender__started"
_SENDER_MID = "_RTCRtpSender__mid"
_SENDER_EXT_MAP = "_RTCRtpSender__rtp_header_extensions_map"
_SENDER_RTX_PT = "_RTCRtpSender__rtx_payload_type"
_SENDER_RTX_SEQ = "_RTCRtpSender__rtx_sequence_number"
_SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
_SENDER_RTP_TS = "_RTCRtpSender__rtp_timestamp"
_SENDER_OCTETS = "_RTCRtpSender__octet_count"
_SENDER_PACKETS = "_RTCRtpSender__packet_count"

MediaCallback = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]

_ACTIVE_SSRC_REFRESH_MS = 1000
_NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01


def check_version() -> None:
    """Refuse to run on an aiortc other than the one these hooks were written and tested against."""
    _check("aiortc", aiortc.__version__, AIORTC_VERSION)


def check_send_path_versions() -> None:
    """Refuse to forward with an aioice or pylibsrtp other than the ones `SenderInjector` was
    written and tested against (the SFU only: clients using `install()` do not need them)."""
    _check("aioice", aioice.__version__, AIOICE_VERSION)
    _check("pylibsrtp", pylibsrtp.__version__, PYLIBSRTP_VERSION)


def _check(name: str, found: str, wanted: str) -> None:
    if found != wanted:
        raise RuntimeError(f"media.sfu needs {name}=={wanted} (private hooks), found {found}")


# --- receive side -------------------------------------------------------------------------------


def take_over_rtp(receiver: RTCRtpReceiver, on_packet: MediaCallback) -> None:
    """Replace the receiver's packet handling by the SFU's: aiortc's bookkeeping, then `on_packet`.

    Of what `RTCRtpReceiver._handle_rtp_packet` does, this keeps what the publisher relies on:

    * receive statistics per SSRC (`__remote_streams`, aiortc's own `StreamStatistics`), which
      aiortc's `_run_rtcp` turns into receiver reports and `getStats()` reads;
    * the SSRCs seen (`__active_ssrc`, for `getSynchronizationSources()`), refreshed once a second;
    * RTX unwrapping (`__rtx_ssrc`, `__codecs`), so `on_packet` gets the media packet and its codec;
    * NACKs for missing video packets (`__nack_generator`, `_send_rtcp_nack`).

    It leaves out what only a decoding receiver needs: aiortc's REMB estimator (the SFU sends its
    own REMB, `send_remb`), depayloading, the jitter buffer and the hand-off to the decoder thread,
    which therefore never gets a frame. An error in `on_packet` is logged and not raised.
    """
    codecs = cast(dict[int, RTCRtpCodecParameters], getattr(receiver, _RECEIVER_CODECS))
    rtx_ssrcs = cast(dict[int, int], getattr(receiver, _RECEIVER_RTX_SSRC))
    streams = cast(dict[int, StreamStatistics], getattr(receiver, _RECEIVER_REMOTE_STREAMS))
    active_ssrcs = cast(dict[int, Any], getattr(receiver, _RECEIVER_ACTIVE_SSRC))
    nack_generator = cast(NackGenerator | None, getattr(receiver, _RECEIVER_NACK_GENERATOR))
    seen_at_ms: dict[int, int] = {}

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not receiver._enabled:
            return
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        ssrc = packet.ssrc
        stream = streams.get(ssrc)
        if stream is None:
            stream = streams[ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if arrival_time_ms - seen_at_ms.get(ssrc, -_ACTIVE_SSRC_REFRESH_MS) >= _ACTIVE_SSRC_REFRESH_MS:
            seen_at_ms[ssrc] = arrival_time_ms
            active_ssrcs[ssrc] = aiortc_clock.current_datetime()
        if is_rtx(codec):
            media_ssrc = rtx_ssrcs.get(ssrc)
            apt = codec.parameters.get("apt")
            if media_ssrc is None or not isinstance(apt, int) or apt not in codecs or len(packet.payload) < 2:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=media_ssrc)
            codec = codecs[apt]
        if nack_generator is not None and nack_generator.add(packet):
            await receiver._send_rtcp_nack(packet.ssrc, sorted(nack_generator.missing))
        try:
            await on_packet(packet, codec)
        except Exception:
            logger.exception("SFU receive hook failed on %r", packet)

    receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a Picture Loss Indication for `media_ssrc` to the remote sender of this receiver."""
    await receiver._send_rtcp_pli(media_ssrc)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, ssrcs: list[int]) -> bool:
    """Send a REMB of `bitrate` bit/s for `ssrcs`; False when the receiver has no RTCP SSRC yet."""
    rtcp_ssrc = cast(int | None, getattr(receiver, _RECEIVER_RTCP_SSRC))
    if rtcp_ssrc is None:
        return False
    packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))
    await receiver._send_rtcp(packet)
    return True


# --- send side ----------------------------------------------------------------------------------


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs negotiated on this transceiver (first = the one aiortc's sender would use)."""
    return list(transceiver._codecs)


def sender_started(sender: RTCRtpSender) -> bool:
    """True once aiortc called `sender.send()`: the subscriber answered and DTLS is up."""
    return bool(getattr(sender, _SENDER_STARTED))


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp, like `aiortc.clock.current_ntp_time()` (which
    goes through `datetime` and costs ten times more) to within a microsecond."""
    return int((time.time() + _NTP_UNIX_OFFSET_S) * 4294967296.0)


class _Link:
    """Where a started sender's packets go: its DTLS transport (whose state gates sending) and the
    ICE connection whose nominated pair the wire is aimed at. Made once the sender is started and
    DTLS connected; fixed from then on (`RTCRtpSender.send` configures the sender only once)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self.dtls = sender.transport
        self.connection: Connection = self.dtls.transport._connection
        self.pair: CandidatePair | None = None


class SenderInjector:
    """Sends forwarded packets through one subscriber's `RTCRtpSender` and takes over its feedback.

    * `forward()` hands a source packet to the stream's `wire` (media.sfu.wire, in C), which
      rewrites its numbers, writes it for the sender's SSRC and mid, protects it with the DTLS
      transport's SRTP session, sends it on the nominated ICE pair's socket and remembers it in a
      `history_size` history, all synchronously. That is what `RTCDtlsTransport._send_rtp` →
      `Connection.send` → `Connection.sendto` → `StunProtocol.send_data` →
      `DatagramTransport.sendto` do (rtcdtlstransport.py, aioice ice.py), minus four coroutines.
      The wire keeps the DTLS transport's `__tx_bytes`/`__tx_packets` (its `getStats()`) and the
      sender's SR counters `__ntp_timestamp`, `__rtp_timestamp`, `__octet_count`,
      `__packet_count`, which aiortc's `_run_rtcp` reports;
    * NACKs are answered from that history, wrapped in RTX when negotiated (`_retransmit`);
    * PLI/FIR call `on_keyframe_request` (which should ask the publisher, rate-limited);
    * a REMB from the subscriber calls `on_remb(bitrate)`.
    """

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        history_size: int,
        on_keyframe_request: Callable[[], None],
        on_remb: Callable[[int], Awaitable[None]],
    ) -> None:
        check_send_path_versions()
        self._transceiver = transceiver
        self._sender = transceiver.sender
        # Random starts in the lower half of the ranges, like aiortc (avoids early SRTP rollover).
        self.wire = Wire(history_size, random.randrange(1 << 15), random.randrange(1 << 31))
        self.retransmitted: list[int] = []
        self._on_keyframe_request = on_keyframe_request
        self._on_remb = on_remb
        self._link: _Link | None = None
        self._install()

    def _install(self) -> None:
        sender = self._sender
        original_rtcp = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    bitrate, ssrcs = 0, []
                if sender._ssrc in ssrcs:
                    await self._on_remb(bitrate)
            await original_rtcp(packet)

        sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        sender._send_keyframe = self._on_keyframe_request  # type: ignore[method-assign]

    @property
    def ready(self) -> bool:
        """True when packets can be sent: negotiated, started and the DTLS transport connected."""
        return self._ready_link() is not None

    def _ready_link(self) -> _Link | None:
        """The link, once negotiated and started, while the DTLS transport is connected."""
        link = self._link or self._connect()
        return link if link is not None and link.dtls._state is DtlsState.CONNECTED else None

    def _connect(self) -> _Link | None:
        sender = self._sender
        if not sender_started(sender) or sender.transport.state != "connected":
            return None
        ids = cast(HeaderExtensions, getattr(getattr(sender, _SENDER_EXT_MAP), _EXT_MAP_IDS))
        mid = cast(str | None, getattr(sender, _SENDER_MID))
        extension_ids = (ids.mid or 0, ids.abs_send_time or 0, ids.audio_level or 0)
        if not supports(mid, *extension_ids):
            logger.warning("sender %s: two-byte header extensions are not supported; not forwarding", sender._ssrc)
            return None
        dtls = sender.transport
        counters = (
            vars(dtls),
            _DTLS_TX_BYTES,
            _DTLS_TX_PACKETS,
            vars(sender),
            _SENDER_NTP,
            _SENDER_RTP_TS,
            _SENDER_OCTETS,
            _SENDER_PACKETS,
        )
        wire_connect(self.wire, sender._ssrc, mid, extension_ids, dtls._tx_srtp, counters)
        self._link = _Link(sender)
        return self._link

    @property
    def ssrc(self) -> int:
        return self._sender._ssrc

    def payload_type_for(self, codec: RTCRtpCodecParameters) -> int | None:
        """The subscriber's payload type for the publisher's `codec` (same mime type and clock rate)."""
        for candidate in negotiated_codecs(self._transceiver):
            if candidate.mimeType.lower() == codec.mimeType.lower() and candidate.clockRate == codec.clockRate:
                return candidate.payloadType
        return None

    def forward(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        ntp: int,
        audio_level: tuple[bool, int] | None,
        now: float,
        clock_rate: int,
    ) -> bool:
        """Forward one source packet (its own numbers; the wire rewrites them) at `ntp` (`ntp_now()`,
        the abs-send-time and SR clock) and `now` (the router's clock, for the gap a new source's
        timestamps follow, in `clock_rate` ticks). False when it did not go out (not `ready`, no
        nominated pair or socket, dropped by the rewriter, or refused by SRTP); a datagram the
        kernel refuses counts as sent and lost (`wire.dropped`)."""
        link = self._ready_link()
        if link is None:
            return False
        pair = link.connection._nominated.get(1)
        if pair is None:
            return False
        if pair is not link.pair:
            link.pair = pair
            sock = pair.protocol.transport.get_extra_info("socket")
            if sock is None:  # a relayed local candidate (TURN): the SFU gathers host candidates only
                logger.error("sender %s: the nominated ICE pair has no socket; not forwarding", self._sender._ssrc)
            self.wire.aim(sock, *pair.remote_addr[:2])
        return self.wire.forward(
            payload_type, marker, sequence_number, timestamp, payload, ntp, audio_level, now, clock_rate
        )

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK for `sequence_number` from the history (replaces `RTCRtpSender._retransmit`)."""
        data = self.wire.history(sequence_number)
        if data is None:
            return
        sender = self._sender
        rtx_payload_type = cast(int | None, getattr(sender, _SENDER_RTX_PT))
        if rtx_payload_type is not None:
            ext_map = cast(HeaderExtensionsMap, getattr(sender, _SENDER_EXT_MAP))
            rtx_seq = cast(int, getattr(sender, _SENDER_RTX_SEQ))
            packet = RtpPacket.parse(data, ext_map)
            packet = wrap_rtx(packet, payload_type=rtx_payload_type, sequence_number=rtx_seq, ssrc=sender._rtx_ssrc)
            setattr(sender, _SENDER_RTX_SEQ, (rtx_seq + 1) & 0xFFFF)
            data = packet.serialize(ext_map)
        try:
            await sender.transport._send_rtp(data)
        except ConnectionError:
            return
        self.retransmitted.append(sequence_number)


def is_keyframe_request(packet: AnyRtcpPacket) -> bool:
    """True for PLI and FIR: the RTCP messages aiortc's sender turns into `_send_keyframe()`."""
    return isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR)


async def start_negotiated_media(pc: RTCPeerConnection) -> None:
    """Start the senders and receivers aiortc skipped because DTLS was not connected yet.

    `RTCPeerConnection.__connect` (rtcpeerconnection.py, scheduled by setLocalDescription and
    setRemoteDescription) calls `sender.send()` / `receiver.receive()` only if the DTLS transport
    is already connected; after a renegotiation that finished while DTLS was still connecting, no
    later run starts them. Running it again once connected does so (both calls are idempotent).
    """
    await getattr(pc, _PC_CONNECT)()


def defer_unoffered(transceiver: RTCRtpTransceiver) -> None:
    """Make a transceiver that a remote offer has no m-line for wait for our next offer.

    Such a transceiver is a local track added since the last negotiation (a publish while a
    remote offer was on its way, or an own offer dropped in glare: the Python client in
    peer-to-peer rooms). aiortc 1.16.0 does not expect it when answering (rtcpeerconnection.py):

    * `setLocalDescription(answer)` ("configure direction") derives every transceiver's current
      direction from `_offerDirection`, which only the remote offer sets for the transceivers it
      matched: None raised `ValueError: None is not in list`;
    * `createOffer` gave the transceiver an m-line index (`_set_mline_index`) for the dropped
      offer, and `setLocalDescription` ("assign MID") takes the first transceiver with an m-line's
      index: the stale one got the mid of the m-line the remote offer put there (seen: a video
      transceiver with an audio m-line's mid, and the next offer failed at the peer)."""
    if transceiver._offerDirection is None:
        transceiver._offerDirection = "inactive"  # until our next offer negotiates it
    transceiver._set_mline_index(None)  # type: ignore[arg-type]  # no m-line yet: createOffer gives it one


def bundle_policy(pc: RTCPeerConnection) -> RTCBundlePolicy:
    """The PeerConnection's bundle policy (aiortc keeps its `RTCConfiguration` in `__configuration`
    and has no `getConfiguration()`)."""
    configuration = cast(RTCConfiguration, getattr(pc, _PC_CONFIGURATION))
    return configuration.bundlePolicy


# --- negotiation: createOffer keeps negotiated payload types and extmap ids ---------------------

_Negotiated = dict[int, tuple[str, list[RTCRtpCodecParameters], list[RTCRtpHeaderExtensionParameters]]]
_negotiated_in_offer: contextvars.ContextVar[_Negotiated | None] = contextvars.ContextVar(
    "openrooms_sfu_negotiated", default=None
)
_original_create_offer = RTCPeerConnection.createOffer
_original_media_description = aiortc_pc.create_media_description_for_transceiver
_installed = False


def install() -> None:
    """Install the process-wide hooks (idempotent): the createOffer renumbering fix, and a quiet end
    for `__connect` when the PeerConnection closed under it."""
    global _installed, _original_connect
    check_version()
    if _installed:
        return
    RTCPeerConnection.createOffer = _create_offer  # type: ignore[method-assign]
    aiortc_pc.create_media_description_for_transceiver = _media_description_for_transceiver
    _original_connect = getattr(RTCPeerConnection, _PC_CONNECT)
    setattr(RTCPeerConnection, _PC_CONNECT, _connect_unless_closed)
    _installed = True


_original_connect: Any = None


async def _connect_unless_closed(self: RTCPeerConnection) -> None:
    """`RTCPeerConnection.__connect` (rtcpeerconnection.py), scheduled as a bare task by
    setLocalDescription/setRemoteDescription. If the PeerConnection is closed while it runs (a
    participant leaves, is kicked or the room ends right after a negotiation), aiortc raises
    InvalidStateError("RTCIceTransport is closed") from that task and asyncio logs it as a "Task
    exception was never retrieved" traceback. Closed is the expected end here: nothing to report."""
    try:
        await _original_connect(self)
    except InvalidStateError:
        if self.connectionState != "closed" and self.signalingState != "closed":
            raise
        logger.debug("PeerConnection closed while connecting; nothing left to connect")


async def _create_offer(self: RTCPeerConnection) -> RTCSessionDescription:
    negotiated: _Negotiated = {
        id(t): (t.kind, list(t._codecs), list(t._headerExtensions))
        for t in self.getTransceivers()
        if t.mid is not None and t._codecs
    }
    token = _negotiated_in_offer.set(negotiated)
    try:
        return await _original_create_offer(self)
    finally:
        _negotiated_in_offer.reset(token)


def _media_description_for_transceiver(transceiver: RTCRtpTransceiver, cname: str, direction: str, mid: str) -> Any:
    negotiated = _negotiated_in_offer.get()
    if negotiated:
        saved = negotiated.get(id(transceiver))
        if saved is not None:
            transceiver._codecs, transceiver._headerExtensions = list(saved[1]), list(saved[2])
        else:
            _align_with_bundle(transceiver, negotiated.values())
    return _original_media_description(transceiver, cname, direction, mid)


def _codec_key(kind: str, codec: RTCRtpCodecParameters) -> tuple[str, str, int, str, str]:
    params = codec.parameters
    return (
        kind,
        codec.mimeType.lower(),
        codec.clockRate,
        str(params.get("packetization-mode", "")),
        str(params.get("profile-level-id", "")),
    )


def _align_with_bundle(
    transceiver: RTCRtpTransceiver,
    negotiated: Iterable[tuple[str, list[RTCRtpCodecParameters], list[RTCRtpHeaderExtensionParameters]]],
) -> None:
    """Give a new m-line the payload types and extmap ids already in use on the BUNDLE for the same
    codecs and URIs, and fresh numbers that collide with none of them for the rest."""
    known_pt: dict[tuple[str, str, int, str, str], int] = {}
    known_rtx: dict[tuple[str, int], int] = {}  # (kind, apt) → rtx payload type
    used_pts: set[int] = set()
    ext_ids: dict[str, int] = {}
    for kind, bundle_codecs, bundle_extensions in negotiated:
        for codec in bundle_codecs:
            if codec.payloadType is None:
                continue
            used_pts.add(codec.payloadType)
            apt = codec.parameters.get("apt")
            if is_rtx(codec) and isinstance(apt, int):
                known_rtx.setdefault((kind, apt), codec.payloadType)
            elif not is_rtx(codec):
                known_pt.setdefault(_codec_key(kind, codec), codec.payloadType)
        for ext in bundle_extensions:
            ext_ids.setdefault(ext.uri, ext.id)

    def pick_pt(known: int | None, static: int | None) -> int:
        if known is not None:
            return known
        first: int = static if static is not None else 96
        pt: int = next(p for p in [first, *range(96, 128)] if p not in used_pts)
        used_pts.add(pt)
        return pt

    pt_map: dict[int | None, int] = {}
    codecs: list[RTCRtpCodecParameters] = []
    for codec in transceiver._codecs:
        if is_rtx(codec):
            continue
        new = copy.deepcopy(codec)
        new.payloadType = pick_pt(known_pt.get(_codec_key(transceiver.kind, codec)), codec.payloadType)
        pt_map[codec.payloadType] = new.payloadType
        codecs.append(new)
    for codec in transceiver._codecs:
        apt = codec.parameters.get("apt")
        if not is_rtx(codec) or not isinstance(apt, int) or apt not in pt_map:
            continue
        new = copy.deepcopy(codec)
        new_apt = pt_map[apt]
        new.payloadType = pick_pt(known_rtx.get((transceiver.kind, new_apt)), codec.payloadType)
        new.parameters["apt"] = new_apt
        index = next(i for i, c in enumerate(codecs) if c.payloadType == new_apt)
        codecs.insert(index + 1, new)
    transceiver._codecs = codecs

    used_ids = set(ext_ids.values())
    extensions: list[RTCRtpHeaderExtensionParameters] = []
    for ext in transceiver._headerExtensions:
        ext_id = ext_ids.get(ext.uri)
        if ext_id is None:
            ext_id = ext.id if ext.id not in used_ids else next(i for i in range(1, 15) if i not in used_ids)
            used_ids.add(ext_id)
        extensions.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=ext.uri))
    transceiver._headerExtensions = extensions
