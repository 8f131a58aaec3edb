"""Every private aiortc hook the SFU relies on, in one place.

aiortc has no API for forwarding RTP without decoding (reference/media-sfu-aiortc.md §2.1), so
the SFU reaches into its internals. Each hook below names the aiortc 1.16.0 source it depends on;
aiortc is pinned exactly in pyproject.toml and tests/unit/test_sfu_hooks.py fails when an upgrade
moves any of them. Nothing outside this module touches a private aiortc name.

Receive side (a publisher's `RTCRtpReceiver` on the SFU):

* `intercept_rtp`: wraps `RTCRtpReceiver._handle_rtp_packet` (rtcrtpreceiver.py, called by
  `RTCDtlsTransport._handle_rtp_data`, rtcdtlstransport.py) per instance, so the SFU sees each
  packet first and aiortc then still keeps its statistics, RRs and NACKs.
* `skip_decoding`: replaces the receiver's `__decoder_queue` (rtcrtpreceiver.py
  `RTCRtpReceiver.__init__`, fed in `_handle_rtp_packet`, drained by `decoder_worker`) by one that
  discards frames, so the decoder thread idles and `get_decoder` is never called.
* `disable_bitrate_estimator`: sets `__remote_bitrate_estimator` to None, which `_handle_rtp_packet`
  checks before sending aiortc's own REMB (the ~300 kbit/s problem, §6 of the reference).
* `receiver_codecs`, `receiver_rtx_ssrcs`: read `__codecs` and `__rtx_ssrc`, filled by
  `RTCRtpReceiver.receive`, to unwrap RTX and know each payload type's codec.
* `send_pli`, `send_remb`: `RTCRtpReceiver._send_rtcp_pli` and `_send_rtcp` with the receiver's
  `__rtcp_ssrc` (set by `_set_rtcp_ssrc` in `RTCPeerConnection.__createTransceiver`).

Send side (a subscriber's `RTCRtpSender` on the SFU), `SenderInjector`:

* injects packets the way `RTCRtpSender._run_rtp` does (rtcrtpsender.py): sets `_ssrc`, the
  `__mid` and abs-send-time extensions, serializes with `__rtp_header_extensions_map`, sends with
  `transport._send_rtp` (rtcdtlstransport.py) and keeps the SR counters `__ntp_timestamp`,
  `__rtp_timestamp`, `__octet_count`, `__packet_count` that `_run_rtcp` reports;
* overrides `_retransmit` to answer NACKs from the SFU's own, longer history, wrapped in RTX with
  `__rtx_payload_type`, `__rtx_sequence_number` and `_rtx_ssrc` like the original;
* overrides `_send_keyframe` (called by `_handle_rtcp_packet` on PLI/FIR; it only sets
  `__force_keyframe`, which does nothing for forwarded packets) to ask the publisher instead;
* wraps `_handle_rtcp_packet` to read the subscriber's REMB;
* `negotiated_codecs` reads `RTCRtpTransceiver._codecs` to learn the subscriber's payload types,
  `sender_started` reads `__started` (set by `RTCRtpSender.send`).

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
import queue
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import aiortc
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
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    wrap_rtx,
)

from media.sfu.history import RetransmissionHistory

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"

# Name-mangled attributes, spelled once.
_RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
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

RtpCallback = Callable[[RtpPacket], Awaitable[None]]


def check_version() -> None:
    """Refuse to run on an aiortc other than the one these hooks were written and tested against."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise RuntimeError(f"media.sfu needs aiortc=={AIORTC_VERSION} (private hooks), found {aiortc.__version__}")


# --- receive side -------------------------------------------------------------------------------


def intercept_rtp(receiver: RTCRtpReceiver, on_packet: RtpCallback) -> None:
    """Call `on_packet` with every RTP packet the receiver gets, before aiortc's own handling.

    aiortc still runs afterwards (receive statistics for RRs, NACK generation). An error in
    `on_packet` is logged and does not stop aiortc's handling.
    """
    original = receiver._handle_rtp_packet

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        try:
            await on_packet(packet)
        except Exception:
            logger.exception("SFU receive hook failed on %r", packet)
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


class DiscardingDecoderQueue:
    """Stands in for a receiver's decoder queue: frames are counted and dropped, never decoded.

    Only the stop sentinel (None) reaches the real queue, so `RTCRtpReceiver.stop()` still ends
    the decoder thread (which therefore never gets a frame and never creates a decoder).
    """

    def __init__(self, inner: queue.Queue[Any]) -> None:
        self._inner = inner
        self.discarded = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._inner.put(None)
        else:
            self.discarded += 1

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._inner.get(block, timeout)


def skip_decoding(receiver: RTCRtpReceiver) -> DiscardingDecoderQueue:
    """Make the receiver drop its reassembled frames instead of decoding them (works before or after
    `receive()` started the decoder thread, which reads through the wrapper or the wrapped queue)."""
    current = getattr(receiver, _RECEIVER_DECODER_QUEUE)
    if isinstance(current, DiscardingDecoderQueue):
        return current
    discarding = DiscardingDecoderQueue(current)
    setattr(receiver, _RECEIVER_DECODER_QUEUE, discarding)
    return discarding


def disable_bitrate_estimator(receiver: RTCRtpReceiver) -> None:
    """Stop aiortc from sending its own REMB for this receiver; the SFU sends its own (`send_remb`)."""
    setattr(receiver, _RECEIVER_ESTIMATOR, None)


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    """The receiver's negotiated codecs by payload type (empty until `receive()`)."""
    return cast(dict[int, RTCRtpCodecParameters], getattr(receiver, _RECEIVER_CODECS))


def receiver_rtx_ssrcs(receiver: RTCRtpReceiver) -> dict[int, int]:
    """RTX SSRC → media SSRC, from the remote description's ssrc-group FID lines."""
    return cast(dict[int, int], getattr(receiver, _RECEIVER_RTX_SSRC))


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


class SenderInjector:
    """Sends forwarded packets through one subscriber's `RTCRtpSender` and takes over its feedback.

    * `send()` stamps the sender's SSRC and mid, remembers the packet in a `history_size` history
      and updates the SR counters, so aiortc's RTCP loop reports what was really sent;
    * NACKs are answered from that history, wrapped in RTX when negotiated;
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
        self._transceiver = transceiver
        self._sender = transceiver.sender
        self.history: RetransmissionHistory[RtpPacket] = RetransmissionHistory(history_size)
        self.retransmitted: list[int] = []
        self._on_keyframe_request = on_keyframe_request
        self._on_remb = on_remb
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
        return sender_started(self._sender) and self._sender.transport.state == "connected"

    @property
    def ssrc(self) -> int:
        return self._sender._ssrc

    def payload_type_for(self, codec: RTCRtpCodecParameters) -> int | None:
        """The subscriber's payload type for the publisher's `codec` (same mime type and clock rate)."""
        for candidate in negotiated_codecs(self._transceiver):
            if candidate.mimeType.lower() == codec.mimeType.lower() and candidate.clockRate == codec.clockRate:
                return candidate.payloadType
        return None

    async def send(self, packet: RtpPacket) -> bool:
        """Send `packet` (payload type, sequence number and timestamp already rewritten)."""
        sender = self._sender
        ntp = aiortc_clock.current_ntp_time()
        packet.ssrc = sender._ssrc
        packet.extensions.mid = getattr(sender, _SENDER_MID)
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        self.history.put(packet.sequence_number, packet)
        ext_map = cast(HeaderExtensionsMap, getattr(sender, _SENDER_EXT_MAP))
        try:
            await sender.transport._send_rtp(packet.serialize(ext_map))
        except ConnectionError:
            return False
        setattr(sender, _SENDER_NTP, ntp)
        setattr(sender, _SENDER_RTP_TS, packet.timestamp)
        setattr(sender, _SENDER_OCTETS, getattr(sender, _SENDER_OCTETS) + len(packet.payload))
        setattr(sender, _SENDER_PACKETS, getattr(sender, _SENDER_PACKETS) + 1)
        return True

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK for `sequence_number` from the history (replaces `RTCRtpSender._retransmit`)."""
        packet = self.history.get(sequence_number)
        if packet is None:
            return
        sender = self._sender
        rtx_payload_type = cast(int | None, getattr(sender, _SENDER_RTX_PT))
        if rtx_payload_type is not None:
            rtx_seq = cast(int, getattr(sender, _SENDER_RTX_SEQ))
            packet = wrap_rtx(packet, payload_type=rtx_payload_type, sequence_number=rtx_seq, ssrc=sender._rtx_ssrc)
            setattr(sender, _SENDER_RTX_SEQ, (rtx_seq + 1) & 0xFFFF)
        ext_map = cast(HeaderExtensionsMap, getattr(sender, _SENDER_EXT_MAP))
        try:
            await sender.transport._send_rtp(packet.serialize(ext_map))
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
