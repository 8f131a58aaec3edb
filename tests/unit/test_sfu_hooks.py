"""One test per private aiortc hook (media.sfu.hooks): each fails if an aiortc upgrade moves it.

Each test checks the private name the hook relies on (and its signature or the aiortc source
line that calls it), then exercises the hook on real aiortc objects, without a network: the
live path is covered by tests/integration/test_sfu_forwarding.py.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import re
import threading
from typing import Any

import aiortc
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from media.sfu import hooks
from media.sfu.idle_track import IdleTrack


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1; gather exactly that (setLocalDescription gathers candidates)."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
async def pc() -> Any:
    hooks.install()
    connection = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    yield connection
    await connection.close()


def params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_aiortc_is_the_exact_version_the_hooks_were_written_for():
    assert aiortc.__version__ == hooks.AIORTC_VERSION
    hooks.check_version()


async def test_intercept_rtp_sees_each_packet_before_aiortc_handles_it(pc):
    assert params(RTCRtpReceiver._handle_rtp_packet) == ["self", "packet", "arrival_time_ms"]
    caller = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in caller
    receiver = pc.addTransceiver("video").receiver
    order: list[str] = []
    original = receiver._handle_rtp_packet

    async def aiortc_side(packet: RtpPacket, arrival_time_ms: int) -> None:
        order.append("aiortc")
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = aiortc_side

    async def sfu_side(packet: RtpPacket) -> None:
        order.append(f"sfu:{packet.sequence_number}")

    hooks.intercept_rtp(receiver, sfu_side)
    await receiver._handle_rtp_packet(RtpPacket(payload_type=97, sequence_number=7), arrival_time_ms=0)
    assert order == ["sfu:7", "aiortc"]


async def test_skip_decoding_keeps_frames_from_the_decoder_thread(pc, monkeypatch):
    receiver = pc.addTransceiver("video").receiver
    assert isinstance(receiver._RTCRtpReceiver__decoder_queue, queue.Queue)
    assert params(aiortc.rtcrtpreceiver.decoder_worker) == ["loop", "input_q", "output_q", "decode_error"]
    assert "self.__decoder_queue.put((codec, encoded_frame))" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    decoders: list[Any] = []
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", lambda codec: decoders.append(codec))

    discarding = hooks.skip_decoding(receiver)
    assert receiver._RTCRtpReceiver__decoder_queue is discarding
    output: asyncio.Queue[Any] = asyncio.Queue()
    worker = threading.Thread(
        target=aiortc.rtcrtpreceiver.decoder_worker,
        args=(asyncio.get_running_loop(), discarding, output, threading.Event()),
    )
    worker.start()
    discarding.put(("codec", "frame"))
    discarding.put(None)
    assert await asyncio.wait_for(output.get(), 5) is None  # the worker ended on the sentinel
    worker.join(5)
    assert discarding.discarded == 1 and decoders == []


async def test_disable_bitrate_estimator_removes_aiortcs_remb(pc):
    receiver = pc.addTransceiver("video").receiver
    assert isinstance(receiver._RTCRtpReceiver__remote_bitrate_estimator, aiortc.rtcrtpreceiver.RemoteBitrateEstimator)
    assert "if self.__remote_bitrate_estimator is not None:" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    hooks.disable_bitrate_estimator(receiver)
    assert receiver._RTCRtpReceiver__remote_bitrate_estimator is None
    packet = RtpPacket(payload_type=97, sequence_number=1)
    packet.extensions.abs_send_time = 1234
    await receiver._handle_rtp_packet(packet, arrival_time_ms=0)  # no estimator: no crash, no REMB


async def test_receiver_codecs_and_rtx_ssrcs_are_the_receivers_tables(pc):
    receiver = pc.addTransceiver("video").receiver
    assert hooks.receiver_codecs(receiver) == {} and hooks.receiver_rtx_ssrcs(receiver) == {}
    source = inspect.getsource(RTCRtpReceiver.receive)
    assert "self.__codecs[codec.payloadType] = codec" in source
    assert "self.__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc" in source


async def test_send_pli_and_send_remb_use_the_receivers_rtcp_path(pc):
    assert params(RTCRtpReceiver._send_rtcp_pli) == ["self", "media_ssrc"]
    assert params(RTCRtpReceiver._send_rtcp) == ["self", "packet"]
    transceiver = pc.addTransceiver("video")
    receiver = transceiver.receiver
    assert receiver._RTCRtpReceiver__rtcp_ssrc == transceiver.sender._ssrc
    sent: list[Any] = []

    async def capture(packet: Any) -> None:
        sent.append(packet)

    receiver._send_rtcp = capture
    await hooks.send_pli(receiver, 1111)
    assert await hooks.send_remb(receiver, 150_000, [2222])
    pli, remb = sent
    assert (pli.fmt, pli.media_ssrc, pli.ssrc) == (RTCP_PSFB_PLI, 1111, transceiver.sender._ssrc)
    assert remb.fmt == RTCP_PSFB_APP and unpack_remb_fci(remb.fci) == (150_000, [2222])


async def test_sender_injector_sends_answers_nacks_forwards_keyframe_requests_and_reads_remb(pc, monkeypatch):
    for name in ("_retransmit", "_send_keyframe", "_handle_rtcp_packet"):
        assert hasattr(RTCRtpSender, name)
    assert params(RTCRtpSender._retransmit) == ["self", "sequence_number"]
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    transceiver = pc.addTransceiver(IdleTrack("video", "t1"), direction="sendrecv")
    sender = transceiver.sender
    for name in ("__started", "__mid", "__rtp_header_extensions_map", "__rtx_payload_type", "__rtx_sequence_number"):
        assert hasattr(sender, f"_RTCRtpSender{name}"), name
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__octet_count", "__packet_count"):
        assert getattr(sender, f"_RTCRtpSender{name}") == 0, name
    assert isinstance(sender._RTCRtpSender__rtp_header_extensions_map, HeaderExtensionsMap)
    assert params(RTCDtlsTransport._send_rtp) == ["self", "data"]
    sender._RTCRtpSender__rtx_payload_type = 98
    wire: list[bytes] = []

    async def send_rtp(data: bytes) -> None:
        wire.append(data)

    monkeypatch.setattr(sender.transport, "_send_rtp", send_rtp)
    keyframe_requests: list[bool] = []
    rembs: list[int] = []

    async def on_remb(bitrate: int) -> None:
        rembs.append(bitrate)

    injector = hooks.SenderInjector(transceiver, 2048, lambda: keyframe_requests.append(True), on_remb)

    assert await injector.send(RtpPacket(payload_type=97, sequence_number=500, timestamp=9000, payload=b"abc"))
    sent = RtpPacket.parse(wire[0])
    assert (sent.ssrc, sent.sequence_number, sent.payload) == (sender._ssrc, 500, b"abc")
    assert sender._RTCRtpSender__packet_count == 1
    assert sender._RTCRtpSender__octet_count == 3
    assert sender._RTCRtpSender__rtp_timestamp == 9000

    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc)
    nack.lost = [500]
    await sender._handle_rtcp_packet(nack)
    rtx = RtpPacket.parse(wire[1])
    assert (rtx.ssrc, rtx.payload_type, rtx.payload) == (sender._rtx_ssrc, 98, b"\x01\xf4abc")
    assert injector.retransmitted == [500]

    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
    assert keyframe_requests == [True]
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(300_000, [sender._ssrc]))
    await sender._handle_rtcp_packet(remb)
    assert rembs == [300_000]


def _munge(sdp: str) -> str:
    """Renumber VP8 97→110 (RTX apt too) and the mid extension 1→5, as a browser might number them."""
    sdp = re.sub(r"(m=video \d+ \S+) 97 98", r"\1 110 98", sdp)
    sdp = sdp.replace("a=rtpmap:97 VP8", "a=rtpmap:110 VP8").replace("a=rtcp-fb:97 ", "a=rtcp-fb:110 ")
    sdp = sdp.replace("a=fmtp:98 apt=97", "a=fmtp:98 apt=110")
    return sdp.replace(
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid", "a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:mid"
    )


def _sections(sdp: str) -> dict[str, str]:
    return {re.search(r"a=mid:(\S+)", s).group(1): s for s in sdp.split("\r\nm=")[1:]}  # type: ignore[union-attr]


async def test_create_offer_keeps_negotiated_payload_types_and_extmap_ids_on_a_bundle(pc):
    assert params(aiortc.rtcpeerconnection.create_media_description_for_transceiver) == [
        "transceiver",
        "cname",
        "direction",
        "mid",
    ]
    original_source = inspect.getsource(hooks._original_create_offer)
    assert "transceiver._headerExtensions = HEADER_EXTENSIONS[transceiver.kind][:]" in original_source
    assert "create_media_description_for_transceiver(" in original_source
    assert RTCPeerConnection.createOffer is hooks._create_offer

    client = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        client.addTransceiver(IdleTrack("video", "cam"), direction="sendonly")
        await client.setLocalDescription(await client.createOffer())
        await pc.setRemoteDescription(
            aiortc.RTCSessionDescription(sdp=_munge(client.localDescription.sdp), type="offer")
        )
        await pc.setLocalDescription(await pc.createAnswer())
        pc.addTransceiver(IdleTrack("video", "sub"), direction="sendrecv")
        offer = await pc.createOffer()
    finally:
        await client.close()
    existing, added = _sections(offer.sdp)["0"], _sections(offer.sdp)["1"]
    for section in (existing, added):
        assert "a=rtpmap:110 VP8/90000" in section
        assert "a=fmtp:98 apt=110" in section
        assert "a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:mid" in section
        assert "a=rtpmap:97 VP8" not in section


async def test_start_negotiated_media_reruns_aiortcs_connect(pc):
    # aiortc's own __connect (install() wraps it; see the test of that wrapper below)
    connect = hooks._original_connect or pc._RTCPeerConnection__connect
    assert inspect.iscoroutinefunction(connect)
    source = inspect.getsource(connect)
    assert 'if dtlsTransport.state == "connected":' in source and "transceiver.sender.send(" in source
    await hooks.start_negotiated_media(pc)  # nothing negotiated: a no-op that must not raise


async def test_bundle_policy_reads_the_configuration(pc):
    assert hooks.bundle_policy(pc) == RTCBundlePolicy.MAX_BUNDLE
    other = RTCPeerConnection()
    assert hooks.bundle_policy(other) == RTCBundlePolicy.BALANCED
    await other.close()


async def test_a_peer_connection_closed_while_connecting_ends_its_connect_task_quietly(monkeypatch):
    """aiortc's `__connect` task raises InvalidStateError when the PeerConnection closes under it;
    after `install()` that is the quiet end it is, and any other InvalidStateError still raises."""
    from aiortc.exceptions import InvalidStateError

    hooks.install()
    assert RTCPeerConnection._RTCPeerConnection__connect is hooks._connect_unless_closed

    async def closed_under_it(self: RTCPeerConnection) -> None:
        raise InvalidStateError("RTCIceTransport is closed")

    monkeypatch.setattr(hooks, "_original_connect", closed_under_it)
    pc = RTCPeerConnection()
    with pytest.raises(InvalidStateError):
        await hooks._connect_unless_closed(pc)  # open: a real fault, reported
    await pc.close()
    assert await hooks._connect_unless_closed(pc) is None
