"""One test per private aiortc hook (media.sfu.hooks): each fails if an aiortc upgrade moves it.

Each test checks the private name the hook relies on (and its signature or the aiortc source
line that calls it), then exercises the hook on real aiortc objects, without a network: the
live path is covered by tests/integration/test_sfu_forwarding.py.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
from types import SimpleNamespace
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.rtcicetransport
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import pylibsrtp
import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
    RTCRtpSendParameters,
)
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
from media.sfu.wire import Wire, supports
from media.sfu.wire import connect as wire_connect


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


def test_aiortc_aioice_and_pylibsrtp_are_the_exact_versions_the_hooks_were_written_for():
    assert aiortc.__version__ == hooks.AIORTC_VERSION
    assert aioice.__version__ == hooks.AIOICE_VERSION
    assert pylibsrtp.__version__ == hooks.PYLIBSRTP_VERSION
    hooks.check_version()
    hooks.check_send_path_versions()


def _video_receive_parameters() -> RTCRtpReceiveParameters:
    return RTCRtpReceiveParameters(
        codecs=[
            RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97),
            RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}),
        ],
        encodings=[RTCRtpDecodingParameters(ssrc=1111, payloadType=97, rtx=RTCRtpRtxParameters(ssrc=2222))],
    )


async def test_take_over_rtp_keeps_aiortcs_statistics_rtx_and_nacks_and_hands_over_media_packets(pc, caplog):
    # The aiortc code the lean handler stands in for, and the tables it shares with aiortc.
    assert params(RTCRtpReceiver._handle_rtp_packet) == ["self", "packet", "arrival_time_ms"]
    caller = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in caller
    original = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    for line in (
        "self.__remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)",
        "self.__remote_streams[packet.ssrc].add(packet)",
        "self.__active_ssrc[packet.ssrc] = clock.current_datetime()",
        "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)",
        "packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)",
        "if self.__nack_generator is not None and self.__nack_generator.add(packet):",
        "packet.ssrc, sorted(self.__nack_generator.missing)",
        "if not self._enabled:",
    ):
        assert line in original, line
    assert params(RTCRtpReceiver._send_rtcp_nack) == ["self", "media_ssrc", "lost"]
    run_rtcp = inspect.getsource(RTCRtpReceiver._run_rtcp)
    assert "for ssrc, stream in self.__remote_streams.items():" in run_rtcp  # the receiver reports

    transceiver = pc.addTransceiver("video")
    receiver = transceiver.receiver
    receiver._track = aiortc.rtcrtpreceiver.RemoteStreamTrack(kind="video")  # setRemoteDescription's job
    tables = {name: getattr(receiver, f"_RTCRtpReceiver__{name}") for name in ("codecs", "rtx_ssrc", "remote_streams")}
    media: list[tuple[RtpPacket, str]] = []

    async def on_packet(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        media.append((packet, codec.mimeType))
        if packet.sequence_number == 13:
            raise RuntimeError("a faulty SFU callback")

    hooks.take_over_rtp(receiver, on_packet)
    sent: list[Any] = []

    async def capture(packet: Any) -> None:
        sent.append(packet)

    receiver._send_rtcp = capture
    await receiver.receive(_video_receive_parameters())
    try:
        for name, table in tables.items():  # receive() fills the tables the hook holds, not new ones
            assert getattr(receiver, f"_RTCRtpReceiver__{name}") is table, name
        with_ast = RtpPacket(payload_type=97, sequence_number=10, timestamp=0, ssrc=1111, payload=b"k")
        with_ast.extensions.abs_send_time = 1234
        await receiver._handle_rtp_packet(with_ast, arrival_time_ms=0)
        await receiver._handle_rtp_packet(RtpPacket(97, sequence_number=12, ssrc=1111, payload=b"m"), 20)
        rtx = RtpPacket(payload_type=98, sequence_number=500, timestamp=0, ssrc=2222, payload=b"\x00\x0brtx")
        await receiver._handle_rtp_packet(rtx, arrival_time_ms=40)
        await receiver._handle_rtp_packet(RtpPacket(111, sequence_number=14, ssrc=1111), 60)  # unknown type
        await receiver._handle_rtp_packet(RtpPacket(97, sequence_number=13, ssrc=1111, payload=b"x"), 80)
        receiver._enabled = False
        await receiver._handle_rtp_packet(RtpPacket(97, sequence_number=15, ssrc=1111, payload=b"y"), 100)
        receiver._enabled = True

        assert [(p.sequence_number, p.ssrc, p.payload, mime) for p, mime in media] == [
            (10, 1111, b"k", "video/VP8"),
            (12, 1111, b"m", "video/VP8"),
            (11, 1111, b"rtx", "video/VP8"),  # unwrapped
            (13, 1111, b"x", "video/VP8"),
        ]
        assert "SFU receive hook failed" in caplog.text  # logged, and the handler carried on
        # Only the NACK for 11 went out: no REMB from aiortc's estimator, no PLI from a jitter buffer.
        assert [(type(p), p.fmt, p.media_ssrc, p.lost) for p in sent] == [
            (RtcpRtpfbPacket, RTCP_RTPFB_NACK, 1111, [11])
        ]
        stats = await receiver.getStats()
        assert sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp") >= 1
        streams = receiver._RTCRtpReceiver__remote_streams
        assert streams[1111].packets_received == 3 and streams[2222].packets_received == 1
        assert {s.source for s in receiver.getSynchronizationSources()} == {1111, 2222}
        assert receiver._RTCRtpReceiver__decoder_queue.empty()
    finally:
        await receiver.stop()


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


SRTP_KEY = bytes(range(30))


class DatagramCatcher(asyncio.DatagramProtocol):
    """The remote end of the nominated pair: a UDP socket on loopback collecting what arrives."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self._arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))
        self._arrived.set()

    async def received(self, count: int) -> list[tuple[bytes, tuple[str, int]]]:
        """The first `count` datagrams, once they arrived (loopback delivers at once; 5 s at most)."""
        async with asyncio.timeout(5):
            while len(self.sent) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.sent[:count]


async def started_sender(pc: RTCPeerConnection, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, DatagramCatcher]:
    """A sender started as aiortc starts it after negotiation, on a DTLS transport made connected by
    hand (SRTP session with a known key) over an ICE connection whose nominated pair is ours: an
    aioice `StunProtocol` on a real UDP socket, aimed at a `DatagramCatcher` on loopback."""
    transceiver = pc.addTransceiver(IdleTrack("video", "t1"), direction="sendrecv")
    dtls = transceiver.sender.transport
    dtls._tx_srtp = pylibsrtp.Session(pylibsrtp.Policy(key=SRTP_KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    monkeypatch.setattr(dtls, "_state", DtlsState.CONNECTED)
    loop = asyncio.get_running_loop()
    catcher_transport, catcher = await loop.create_datagram_endpoint(DatagramCatcher, local_addr=("127.0.0.1", 0))
    local_transport, protocol = await loop.create_datagram_endpoint(
        lambda: aioice.ice.StunProtocol(receiver=SimpleNamespace(protocol_lost=lambda protocol: None)),
        local_addr=("127.0.0.1", 0),
    )
    remote = aioice.Candidate("1", 1, "udp", 1, *catcher_transport.get_extra_info("sockname"), "host")
    connection = dtls.transport._connection
    connection._nominated[1] = aioice.ice.CandidatePair(protocol, remote)
    catcher.close = lambda: (catcher_transport.close(), local_transport.close())  # type: ignore[attr-defined]
    await transceiver.sender.send(
        RTCRtpSendParameters(
            codecs=[
                RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97),
                RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}),
            ],
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
            ],
            muxId="7",
            rtcp=RTCRtcpParameters(cname="c"),
        )
    )
    return transceiver, catcher


def unprotect(data: bytes) -> bytes:
    session = pylibsrtp.Session(pylibsrtp.Policy(key=SRTP_KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return session.unprotect(data)


async def test_sender_injector_sends_on_the_nominated_pair_what_aiortcs_send_path_would(pc, monkeypatch):
    # The send path it replaces: RTCDtlsTransport._send_rtp → RTCIceTransport._send (aioice
    # Connection.send → sendto) → StunProtocol.send_data → the datagram transport's sendto.
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    for line in (
        "if self._state != State.CONNECTED:",
        "data = self._tx_srtp.protect(data)",
        "await self.transport._send(data)",
        "self.__tx_bytes += len(data)",
        "self.__tx_packets += 1",
    ):
        assert line in send_rtp, line
    assert "self._send = self._connection.send" in inspect.getsource(aiortc.rtcicetransport.RTCIceTransport)
    assert "await self.sendto(data, 1)" in inspect.getsource(aioice.ice.Connection.send)
    sendto = inspect.getsource(aioice.ice.Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "await active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(aioice.ice.StunProtocol.send_data)
    run_rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name}" in run_rtcp, name

    transceiver, catcher = await started_sender(pc, monkeypatch)
    sender, dtls = transceiver.sender, transceiver.sender.transport
    injector = hooks.SenderInjector(transceiver, 2048, lambda: None, _no_remb)
    try:
        assert injector.ready
        ntp = hooks.ntp_now()
        assert injector.forward(97, 1, 500, 9000, b"abc", ntp, None, 0.0, 90000)
        [(data, addr)] = await catcher.received(1)
        assert addr == dtls.transport._connection._nominated[1].protocol.transport.get_extra_info("sockname")
        plain = unprotect(data)
        first = RtpPacket.parse(plain)  # numbers rewritten from the wire's random start
        expected = RtpPacket(
            payload_type=97,
            marker=1,
            sequence_number=first.sequence_number,
            timestamp=first.timestamp,
            ssrc=sender._ssrc,
            payload=b"abc",
        )
        expected.extensions.mid = "7"
        expected.extensions.abs_send_time = (ntp >> 14) & 0xFFFFFF
        assert plain == expected.serialize(sender._RTCRtpSender__rtp_header_extensions_map)  # byte for byte
        assert injector.wire.history(first.sequence_number) == plain
        assert (sender._RTCRtpSender__packet_count, sender._RTCRtpSender__octet_count) == (1, 3)
        assert (sender._RTCRtpSender__rtp_timestamp, sender._RTCRtpSender__ntp_timestamp) == (first.timestamp, ntp)
        assert (dtls._RTCDtlsTransport__tx_packets, dtls._RTCDtlsTransport__tx_bytes) == (1, len(data))

        monkeypatch.setattr(dtls, "_state", DtlsState.CLOSED)
        assert not injector.ready and not injector.forward(97, 0, 501, 12000, b"d", ntp, None, 0.0, 90000)
        monkeypatch.setattr(dtls, "_state", DtlsState.CONNECTED)
        assert injector.forward(97, 0, 502, 15000, b"e", ntp, None, 0.0, 90000)  # the next one goes out, after it
        second = RtpPacket.parse(unprotect((await catcher.received(2))[1][0]))
        assert (second.sequence_number - first.sequence_number) % 65536 == 2  # the gap of 501 is kept
        assert (second.timestamp - first.timestamp) % (1 << 32) == 6000
    finally:
        monkeypatch.setattr(dtls, "_state", DtlsState.NEW)
        catcher.close()
        await sender.stop()


async def _no_remb(bitrate: int) -> None:
    pass


async def test_sender_injector_answers_nacks_forwards_keyframe_requests_and_reads_remb(pc, monkeypatch):
    for name in ("_retransmit", "_send_keyframe", "_handle_rtcp_packet"):
        assert hasattr(RTCRtpSender, name)
    assert params(RTCRtpSender._retransmit) == ["self", "sequence_number"]
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert params(RTCDtlsTransport._send_rtp) == ["self", "data"]
    transceiver, catcher = await started_sender(pc, monkeypatch)
    sender = transceiver.sender
    assert sender._RTCRtpSender__rtx_payload_type == 98  # set by send() from the RTX codec
    keyframe_requests: list[bool] = []
    rembs: list[int] = []

    async def on_remb(bitrate: int) -> None:
        rembs.append(bitrate)

    injector = hooks.SenderInjector(transceiver, 2048, lambda: keyframe_requests.append(True), on_remb)
    try:
        assert injector.forward(97, 0, 500, 9000, b"abc", hooks.ntp_now(), None, 0.0, 90000)
        sent = RtpPacket.parse(unprotect((await catcher.received(1))[0][0])).sequence_number
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc)
        nack.lost = [sent, (sent - 1) % 65536]  # the one before was never sent
        await sender._handle_rtcp_packet(nack)
        rtx = RtpPacket.parse(unprotect((await catcher.received(2))[1][0]))
        assert (rtx.ssrc, rtx.payload_type, rtx.payload) == (sender._rtx_ssrc, 98, sent.to_bytes(2, "big") + b"abc")
        assert injector.retransmitted == [sent]

        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
        assert keyframe_requests == [True]
        remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(300_000, [sender._ssrc]))
        await sender._handle_rtcp_packet(remb)
        assert rembs == [300_000]
        assert len(catcher.sent) == 2
    finally:
        monkeypatch.setattr(sender.transport, "_state", DtlsState.NEW)
        catcher.close()
        await sender.stop()


def _outbound_session() -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=SRTP_KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))


class Counters:
    """Stand-ins for the `vars()` of a DTLS transport and of a sender, whose counters a wire keeps."""

    def __init__(self) -> None:
        self.dtls = {"tx_bytes": 0, "tx_packets": 0}
        self.sender = {"ntp": 0, "rtp_timestamp": 0, "octets": 0, "packets": 0}

    def names(self) -> Any:
        return (self.dtls, "tx_bytes", "tx_packets", self.sender, "ntp", "rtp_timestamp", "octets", "packets")


def connected_wire(
    mid: str | None = "0",
    extension_ids: tuple[int, int, int] = (1, 3, 0),
    first: tuple[int, int] = (1, 1000),
    history_size: int = 1024,
    counters: Counters | None = None,
) -> Wire:
    wire = Wire(history_size, *first)
    wire_connect(wire, 42, mid, extension_ids, _outbound_session(), (counters or Counters()).names())
    return wire


def test_the_wire_sends_what_pylibsrtp_protects_and_keeps_aiortcs_counters():
    # What media.sfu.wire.connect takes from pylibsrtp's Session: its srtp_t context and buffer size.
    process = inspect.getsource(pylibsrtp.Session._Session__process)
    assert "_srtp_assert(func(self._srtp[0], self._cdata, len_p))" in process
    assert "lib.srtp_protect, SRTP_MAX_TRAILER_LEN" in inspect.getsource(pylibsrtp.Session.protect)

    reference, counters = _outbound_session(), Counters()
    wire = connected_wire(first=(1, 1000), counters=counters)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    try:
        assert not wire.forward(96, 0, 100, 0, bytes(300), 7 << 14, None, 0.0, 90000)  # not aimed yet
        wire.aim(sender, *receiver.getsockname())
        sizes = []
        for i in range(3):
            ntp = (i + 8) << 14
            assert wire.forward(96, i & 1, 100 + i, 3000 * i, bytes([i]) * 300, ntp, None, 0.0, 90000)
            plain = wire.history(1 + i)  # rewritten: from the wire's first numbers on
            assert plain == wire.write(96, i & 1, 1 + i, 1000 + 3000 * i, bytes([i]) * 300, i + 8, None)
            datagram = receiver.recv(2048)
            assert datagram == reference.protect(plain)
            assert wire.last_length == len(datagram)
            sizes.append(len(datagram))
        assert wire.packets_sent == 3
        assert counters.dtls == {"tx_bytes": sum(sizes), "tx_packets": 3}
        assert counters.sender == {"ntp": 10 << 14, "rtp_timestamp": 1000 + 6000, "octets": 900, "packets": 3}

        assert not wire.forward(96, 0, 101, 3000, bytes(300), 0, None, 0.0, 90000)  # a replayed index: SRTP refuses
        assert not wire.forward(96, 0, 103, 9000, bytes(1500), 0, None, 0.0, 90000)  # too long to protect
        with pytest.raises(ValueError):
            wire.write(96, 0, 4, 4, bytes(1500), 7, None)
        sender.close()
        assert not wire.forward(96, 0, 104, 9000, bytes(300), 0, None, 0.0, 90000)  # its socket closed
        assert wire.packets_sent == 3 and counters.dtls["tx_packets"] == 3
    finally:
        receiver.close()
        sender.close()


def test_an_unconnected_wire_forwards_nothing_and_a_new_source_follows_the_wall_clock_gap():
    assert not Wire(8, 0, 0).forward(96, 0, 1, 1, b"x", 0, None, 0.0, 90000)
    wire = connected_wire(first=(1, 1000))
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    try:
        wire.aim(sender, *receiver.getsockname())
        assert wire.forward(96, 0, 500, 7, b"a", 0, None, 10.0, 90000)
        wire.switch_source()
        assert not wire.mapped
        assert wire.forward(96, 0, 9, 123_456, b"b", 0, None, 10.5, 90000)  # half a second later
        assert wire.mapped
        assert wire.history(2) == wire.write(96, 0, 2, 1000 + 45_000, b"b", 0, None)
    finally:
        receiver.close()
        sender.close()


def test_the_wire_answers_wrong_arguments_with_python_errors():
    wire = connected_wire(extension_ids=(1, 3, 2))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wire.aim(sender, "127.0.0.1", 9)  # the discard port: nothing listens
    for args in (
        (96,),  # too few
        ("96", 0, 1, 1, b"x", 0, None, 0.0, 90000),  # not an int
        (96, 0, 1, 1, "text", 0, None, 0.0, 90000),  # payload not bytes
        (96, 0, 1, 1, b"x", 0, (True,), 0.0, 90000),  # audio level not (vad, level)
        (96, 0, 1, 1, b"x", 0, None, "now", 90000),  # clock not a number
    ):
        with pytest.raises(TypeError):
            wire.forward(*args)
    with pytest.raises(TypeError):
        wire.write(96, 0, 1, 1, b"x", 0, ("loud", "x"))
    with pytest.raises(ValueError):
        Wire(8, 0, 0).connect(1, b"", 0, 0, _outbound_session(), 1, 1, 1200, ())  # counters missing
    with pytest.raises(RuntimeError):
        Wire(8, 0, 0).write(96, 0, 1, 1, b"x", 0, None)  # not connected
    assert wire.forward(96, 0, 1, 1, b"x", 0, (True, 5), 0.0, 90000)  # and it still works
    sender.close()


def test_the_wire_aims_at_ipv6_addresses_and_refuses_what_is_not_an_address():
    wire = connected_wire(None, (0, 0, 0))
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        receiver.bind(("::1", 0))
        receiver.settimeout(5)
        wire.aim(sender, "::1", receiver.getsockname()[1])
        assert wire.forward(96, 0, 1, 1, b"payload", 0, None, 0.0, 90000)
        assert len(receiver.recv(2048)) == wire.last_length
        for host, port in (("not-an-address", 5000), ("::zz", 5000), ("127.0.0.1", 0)):
            with pytest.raises(ValueError):
                wire.aim(sender, host, port)
        wire.aim(None, "::1", 0)  # no socket (a relayed local candidate): nowhere
        assert not wire.forward(96, 0, 2, 2, b"payload", 0, None, 0.0, 90000)
    finally:
        receiver.close()
        sender.close()


def test_ntp_now_is_aiortcs_ntp_clock():
    from aiortc import clock

    before, ours, after = clock.current_ntp_time(), hooks.ntp_now(), clock.current_ntp_time()
    assert before - (1 << 32) // 1000 <= ours <= after + (1 << 32) // 1000  # within a millisecond


@pytest.mark.parametrize(
    ("uris", "mid", "audio_level"),
    [
        ({1: "sdes:mid", 3: "abs-send-time"}, "0", None),
        ({1: "sdes:mid", 2: "ssrc-audio-level"}, "1", (True, 42)),
        ({1: "sdes:mid", 2: "ssrc-audio-level"}, "1", None),
        ({4: "sdes:mid", 3: "abs-send-time", 10: "ssrc-audio-level"}, "video-12", (False, 127)),
        ({14: "abs-send-time"}, None, None),
        ({}, "0", None),
    ],
    ids=["video", "audio", "audio-no-level", "all-three", "no-mid", "none"],
)
def test_rtp_writer_writes_what_aiortcs_serializer_writes(uris, mid, audio_level):
    full = {
        "sdes:mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
        "abs-send-time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "ssrc-audio-level": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    }
    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=full[u]) for i, u in uris.items()])
    )
    ids = ext_map._HeaderExtensionsMap__ids  # what SenderInjector reads
    writer = Wire(8, 0, 0)
    extension_ids = (ids.mid or 0, ids.abs_send_time or 0, ids.audio_level or 0)
    wire_connect(writer, 0x01020304, mid, extension_ids, _outbound_session(), Counters().names())
    for marker, seq, ts in ((0, 0, 0), (1, 65535, (1 << 32) - 1)):
        expected = RtpPacket(payload_type=111, marker=marker, sequence_number=seq, timestamp=ts, ssrc=0x01020304)
        expected.payload = b"payload"
        expected.extensions.mid = mid
        expected.extensions.abs_send_time = 0xABCDEF
        expected.extensions.audio_level = audio_level
        written = writer.write(111, marker, seq, ts, b"payload", 0xABCDEF, audio_level)
        assert written == expected.serialize(ext_map)


def test_rtp_writer_refuses_what_needs_the_two_byte_header_form():
    assert not supports("0", 15, 3, 0)
    assert not supports("a-mid-of-seventeen", 1, 3, 0)
    with pytest.raises(ValueError):
        connected_wire("", (1, 0, 0))


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


async def test_defer_unoffered_lets_aiortc_answer_an_offer_that_leaves_out_a_new_local_track():
    """The Python client's glare case: its own offer (created, not applied: aiortc has no rollback)
    is dropped by the server, and the peer's offer has no m-line for the track it just added."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from media.client.synthetic_track import SyntheticVideoTrack, ToneAudioTrack

    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("audio", direction="sendrecv")
        await offerer.setLocalDescription(await offerer.createOffer())
        answerer.addTransceiver(ToneAudioTrack(), direction="sendrecv")
        late = answerer.addTransceiver(SyntheticVideoTrack(), direction="sendrecv")
        await answerer.createOffer()  # the dropped offer: it gave both transceivers an m-line index
        await answerer.setRemoteDescription(RTCSessionDescription(sdp=offerer.localDescription.sdp, type="offer"))
        for transceiver in answerer.getTransceivers():
            if transceiver.mid is None:
                hooks.defer_unoffered(transceiver)

        await answerer.setLocalDescription(await answerer.createAnswer())

        assert answerer.signalingState == "stable"
        assert late.mid is None, "the late track waits for the client's next offer"
        assert answerer.localDescription.sdp.count("m=") == 1
    finally:
        await offerer.close()
        await answerer.close()
