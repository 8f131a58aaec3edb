"""The SFU forwarding core against real aiortc peers on loopback.

Each participant is an aiortc client with ONE PeerConnection (MAX_BUNDLE) to an SFU-side
PeerConnection owned by a `media.sfu.Router`, like twilio-video: the client offers its published
tracks, the SFU answers; subscriptions are added by the SFU and sent in a server re-offer.

Loopback ICE quirk (reference/media-sfu-aiortc.md §7): aioice's `get_host_addresses` skips
127.0.0.1, so a fixture makes every PeerConnection gather 127.0.0.1 only.

Waiting is on conditions with timeouts (`eventually`), never on fixed sleeps; frames are counted.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket, unpack_remb_fci
from av import VideoFrame

from domain.ids import ParticipantSid, RoomSid, TrackSid
from media.client.synthetic_track import SyntheticVideoTrack, ToneAudioTrack
from media.sfu import Router, SfuConfig, Subscription, hooks

WIDTH, HEIGHT = 320, 240
TIMEOUT = 20.0


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1; gather exactly that, so tests need no other interface."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def eventually(predicate: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Wait until `predicate()` holds (checked every 10 ms), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


SyntheticVideo = SyntheticVideoTrack  # 320x240, the WIDTH x HEIGHT the subscribers check
ToneAudio = ToneAudioTrack


class FrameSink:
    """Consumes a remote track on the client, counting decoded frames and recording video sizes."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.first_frame_at: float | None = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            frame = await self.track.recv()
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
            if isinstance(frame, VideoFrame):
                self.sizes.add((frame.width, frame.height))


def bundled() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def msid_by_mid(sdp: str) -> dict[str, str]:
    """mid → msid track id, parsed from an SDP the way the session layer will."""
    out: dict[str, str] = {}
    for section in sdp.split("\r\nm=")[1:]:
        mid = re.search(r"a=mid:(\S+)", section)
        msid = re.search(r"a=msid:\S+ (\S+)", section)
        if mid and msid:
            out[mid.group(1)] = msid.group(1)
    return out


class Client:
    """One participant: an aiortc client PC, its SFU-side PC, and what it receives."""

    def __init__(self, router: Router, sid: str) -> None:
        self.router = router
        self.sid = ParticipantSid(sid)
        self.pc = bundled()
        self.server_pc = bundled()
        self.sinks: list[FrameSink] = []
        self.tracks: dict[str, TrackSid] = {}  # client track id → TrackSid
        self.pc.on("track", lambda track: self.sinks.append(FrameSink(track)))
        self.pc.on("connectionstatechange", self._start_media_negotiated_while_connecting)
        router.add_participant(self.sid, self.server_pc)

    async def _start_media_negotiated_while_connecting(self) -> None:
        """aiortc clients share the SFU's race (hooks.start_negotiated_media): a renegotiation that
        completes while DTLS is still connecting leaves its receivers unstarted. Browsers don't."""
        if self.pc.connectionState == "connected":
            await hooks.start_negotiated_media(self.pc)

    async def connect(self, *tracks: MediaStreamTrack) -> None:
        """The client's offer (its published tracks, or a data channel to have something to offer)."""
        for track in tracks:
            self.pc.addTransceiver(track, direction="sendonly")
        if not tracks:
            self.pc.createDataChannel("placeholder")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.server_pc.setRemoteDescription(self.pc.localDescription)
        mapping = {
            mid: TrackSid(f"MT-{self.sid}-{track_id}")
            for mid, track_id in msid_by_mid(self.pc.localDescription.sdp).items()
        }
        self.router.publish_tracks(self.sid, mapping)
        for track_sid in mapping.values():
            self.tracks[track_sid.rsplit("-", 1)[1]] = track_sid
        await self.server_pc.setLocalDescription(await self.server_pc.createAnswer())
        await self.pc.setRemoteDescription(self.server_pc.localDescription)

    async def server_offer(self) -> None:
        """The SFU re-offers (new subscriptions); the client answers."""
        assert self.router.needs_offer(self.sid)
        offer = await self.server_pc.createOffer()
        self.router.offer_sent(self.sid)
        await self.server_pc.setLocalDescription(offer)
        await self.pc.setRemoteDescription(self.server_pc.localDescription)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.server_pc.setRemoteDescription(self.pc.localDescription)

    def subscribe_to(self, publisher: Client) -> list[Subscription]:
        subs = []
        for track_sid in publisher.tracks.values():
            assert self.router.subscribe(self.sid, track_sid, msid_track_id=f"sub-{track_sid}")
            subscription = self.router.subscription(self.sid, track_sid)
            assert subscription is not None
            subs.append(subscription)
        return subs

    def sink(self, kind: str, index: int = 0) -> FrameSink:
        return [s for s in self.sinks if s.track.kind == kind][index]

    async def close(self) -> None:
        for sink in self.sinks:
            sink.task.cancel()
        await self.pc.close()
        await self.server_pc.close()


@pytest.fixture
async def room() -> Any:
    """A router and a factory of clients, all closed at the end."""
    clients: list[Client] = []

    class Room:
        def __init__(self) -> None:
            self.router = Router(RoomSid("RM" + "0" * 32), SfuConfig(max_bitrate_bps=1_500_000))

        def client(self, sid: str) -> Client:
            c = Client(self.router, sid)
            clients.append(c)
            return c

    yield Room()
    for c in clients:
        await c.close()


def sender_of(pc: RTCPeerConnection, kind: str) -> RTCRtpSender:
    return next(t.sender for t in pc.getTransceivers() if t.kind == kind and t.sender.track is not None)


def record_rtcp(sender: RTCRtpSender) -> list[RtcpPsfbPacket]:
    """Record the payload-specific feedback (PLI, REMB) a client's sender receives."""
    seen: list[RtcpPsfbPacket] = []
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket):
            seen.append(packet)
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]
    return seen


def decoder_threads_calling_get_decoder(monkeypatch: pytest.MonkeyPatch) -> set[threading.Thread]:
    import aiortc.rtcrtpreceiver

    threads: set[threading.Thread] = set()
    original = aiortc.rtcrtpreceiver.get_decoder

    def spy(codec: Any) -> Any:
        threads.add(threading.current_thread())
        return original(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", spy)
    return threads


# --- tests ------------------------------------------------------------------------------------------


async def test_subscriber_decodes_forwarded_video_and_audio_and_the_sfu_decodes_nothing(room, monkeypatch):
    decoding_threads = decoder_threads_calling_get_decoder(monkeypatch)
    alice, bob = room.client("alice"), room.client("bob")
    await alice.connect(SyntheticVideo(), ToneAudio())
    await bob.connect()

    subs = bob.subscribe_to(alice)
    await bob.server_offer()

    await eventually(lambda: len(bob.sinks) == 2, what="bob's two remote tracks")
    await eventually(lambda: bob.sink("video").frames >= 30, what="30 decoded video frames at bob")
    await eventually(lambda: bob.sink("audio").frames >= 50, what="50 decoded audio frames at bob")
    assert bob.sink("video").sizes == {(WIDTH, HEIGHT)}
    assert {s.kind for s in subs} == {"audio", "video"}
    assert all(s.packets_sent > 0 for s in subs)

    published = [room.router.published_track(t) for t in alice.tracks.values()]
    sfu_decoder_threads = {t.receiver._RTCRtpReceiver__decoder_thread for t in published}
    assert not decoding_threads & sfu_decoder_threads, "a decoder ran on the SFU"
    assert all(t.receiver._RTCRtpReceiver__decoder_queue.empty() for t in published), "a frame was queued"
    audio = next(t for t in published if t.kind == "audio")
    assert audio.audio_level is not None and audio.audio_level.level < 127  # a tone, not silence


async def test_the_publisher_gets_receiver_reports_from_the_sfu_and_its_stats_count_the_packets(room):
    """The SFU's lean receive path keeps aiortc's receive statistics: `getStats()` on the SFU side,
    and the receiver reports the publisher sees (remote-inbound-rtp) for each of its tracks."""
    alice = room.client("alice")
    await alice.connect(SyntheticVideo(), ToneAudio())
    published = [room.router.published_track(t) for t in alice.tracks.values()]

    async def inbound(track: Any) -> int:
        stats = await track.receiver.getStats()
        return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")

    async def reported(kind: str) -> int:
        stats = await sender_of(alice.pc, kind).getStats()
        return sum(s.packetsReceived for s in stats.values() if s.type == "remote-inbound-rtp")

    for kind in ("video", "audio"):
        deadline = time.monotonic() + TIMEOUT
        while await reported(kind) <= 0:
            assert time.monotonic() < deadline, f"no receiver report from the SFU for alice's {kind}"
            await asyncio.sleep(0.05)
    for track in published:
        assert await inbound(track) > 0 and track.packets_received > 0


async def test_a_late_subscriber_gets_a_keyframe_quickly_because_the_sfu_asks_the_publisher(room):
    alice, bob, carol = room.client("alice"), room.client("bob"), room.client("carol")
    await alice.connect(SyntheticVideo())
    pli_at_alice = record_rtcp(sender_of(alice.pc, "video"))
    await bob.connect()
    bob.subscribe_to(alice)
    await bob.server_offer()
    await eventually(lambda: bob.sinks and bob.sink("video").frames >= 10, what="bob decoding")
    plis_before = sum(1 for p in pli_at_alice if p.fmt == RTCP_PSFB_PLI)

    await carol.connect()
    carol.subscribe_to(alice)
    await carol.server_offer()
    # aiortc's VP8 encoder makes a keyframe every 3000 frames: without the PLI, carol would wait ~100 s.
    await eventually(lambda: carol.sinks and carol.sink("video").frames >= 1, timeout=5.0, what="carol's first frame")
    assert sum(1 for p in pli_at_alice if p.fmt == RTCP_PSFB_PLI) > plis_before
    assert carol.sink("video").sizes == {(WIDTH, HEIGHT)}


async def test_three_participants_each_receive_the_other_two(room):
    people = [room.client(name) for name in ("alice", "bob", "carol")]
    for person in people:
        await person.connect(SyntheticVideo(), ToneAudio())
    for person in people:
        for other in people:
            if other is not person:
                person.subscribe_to(other)
        await person.server_offer()

    for person in people:
        await eventually(lambda p=person: len(p.sinks) == 4, what=f"{person.sid}'s four remote tracks")
    for person in people:
        for i in range(2):
            await eventually(lambda p=person, i=i: p.sink("video", i).frames >= 15, what=f"video {i} at {person.sid}")
            await eventually(lambda p=person, i=i: p.sink("audio", i).frames >= 25, what=f"audio {i} at {person.sid}")
            assert person.sink("video", i).sizes == {(WIDTH, HEIGHT)}


async def test_a_packet_lost_on_the_way_to_a_subscriber_is_retransmitted_from_the_sfu_history(room):
    alice, bob = room.client("alice"), room.client("bob")
    await alice.connect(SyntheticVideo())
    await bob.connect()
    [subscription] = bob.subscribe_to(alice)
    await bob.server_offer()

    receiver: RTCRtpReceiver = next(t.receiver for t in bob.pc.getTransceivers() if t.kind == "video")
    original = receiver._handle_rtp_packet
    dropped: list[int] = []
    rtx_for_dropped: list[int] = []
    media_packets = 0

    async def lossy(packet: RtpPacket, arrival_time_ms: int) -> None:
        nonlocal media_packets
        if packet.ssrc == subscription.injector.ssrc:
            media_packets += 1
            if media_packets == 40:
                dropped.append(packet.sequence_number)
                return
        elif dropped and int.from_bytes(packet.payload[:2], "big") == dropped[0]:
            rtx_for_dropped.append(packet.sequence_number)
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
    await eventually(lambda: bool(dropped), what="the dropped packet")
    await eventually(lambda: dropped[0] in subscription.injector.retransmitted, what="the SFU's retransmission")
    await eventually(lambda: bool(rtx_for_dropped), what="the RTX packet at bob")
    frames = bob.sink("video").frames
    await eventually(lambda: bob.sink("video").frames >= frames + 10, what="bob decoding on")


@pytest.mark.parametrize("cap", [150_000, 1 << 30], ids=["cap-below-estimate", "estimate-below-cap"])
async def test_the_publisher_is_told_the_minimum_of_its_subscribers_estimates_and_the_cap(cap):
    router = Router(RoomSid("RM" + "1" * 32), SfuConfig(max_bitrate_bps=cap, remb_interval_s=0.2))
    alice, bob = Client(router, "alice"), Client(router, "bob")
    try:
        await alice.connect(SyntheticVideo())
        at_alice = record_rtcp(sender_of(alice.pc, "video"))

        def rembs() -> list[int]:
            return [unpack_remb_fci(p.fci)[0] for p in at_alice if p.fmt == RTCP_PSFB_APP]

        await eventually(lambda: cap in rembs(), what="the cap while nobody subscribes")
        await bob.connect()
        [subscription] = bob.subscribe_to(alice)
        await bob.server_offer()
        await eventually(lambda: subscription.subscriber_estimate is not None, what="bob's REMB at the SFU")
        await eventually(
            lambda: min(subscription.subscriber_estimate or 0, cap) in rembs()[-3:],
            what="the REMB following bob's estimate",
        )
        published = router.published_track(next(iter(alice.tracks.values())))
        assert published.last_remb_sent == published.remb_target()
        # Never above the cap. (Below it is fine: a subscriber's estimate starts low on a busy
        # machine, and the min rule passes it on. That aiortc's own REMB never goes out is the
        # `disable_bitrate_estimator` hook's test.)
        assert max(rembs()) <= cap, rembs()
    finally:
        await alice.close()
        await bob.close()


async def test_cpu_per_forwarded_packet_is_measured(room, monkeypatch, record_property):
    """Not a benchmark: the SFU-side CPU (thread time) of the fan-out, per packet sent."""
    spent = [0]
    original = Subscription.forward

    def timed(self: Subscription, packet: RtpPacket, codec: Any, now: float, ntp: int) -> None:
        start = time.thread_time_ns()
        original(self, packet, codec, now, ntp)
        spent[0] += time.thread_time_ns() - start

    monkeypatch.setattr(Subscription, "forward", timed)
    alice, bob = room.client("alice"), room.client("bob")
    await alice.connect(SyntheticVideo(), ToneAudio())
    await bob.connect()
    subs = bob.subscribe_to(alice)
    await bob.server_offer()
    await eventually(lambda: len(bob.sinks) == 2 and bob.sink("video").frames >= 90, what="3 s of video")
    sent = sum(s.packets_sent for s in subs)
    per_packet_us = spent[0] / 1000 / sent
    record_property("sfu_forward_cpu_us_per_packet", round(per_packet_us, 1))
    print(f"\nSFU forward CPU: {per_packet_us:.1f} µs per packet over {sent} packets")
    assert per_packet_us < 5000
