"""First remote frame after `connect()`, through `openrooms serve` and its RSP signaling.

    .venv/bin/python tests/bench/sfu/first_frame.py [--runs 10]

Our path: `openrooms serve` (started here, bundled NATS, SQLite, in a temp dir) with a publisher
already in a group room (Python client, `SyntheticVideoTrack` 640x360 + tone); each run a new
subscriber calls `media.client.connect()` (token check, `connect_participant` command, the
engine's events, the SFU's offer with the subscription) and waits for its first decoded video
frame. Baseline, same run: two aiortc PeerConnections in this process negotiating directly
(offer/answer in memory, no server at all) until the first decoded frame; it is what a client
could never beat. Prints p50/max of both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aioice.ice
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from media.client import FrameCounter, SyntheticVideoTrack, ToneAudioTrack, TrackSubscribed, connect  # noqa: E402

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
WIDTH, HEIGHT = 640, 360


def token(credentials: dict[str, str], identity: str, room: str) -> str:
    access = AccessToken(
        credentials["account_sid"], credentials["api_key_sid"], credentials["api_key_secret"], identity=identity
    )
    access.add_grant(VideoGrant(room=room))
    return str(access.to_jwt())


async def first_frame_through_openrooms(url: str, credentials: dict[str, str], n: int) -> float:
    started = time.perf_counter()
    room = await connect(url, token(credentials, f"viewer-{n}", "bench"), "bench", [])
    try:
        event = await room.wait_for(TrackSubscribed, lambda e: e.publication.kind == "video", timeout=20)
        counter = FrameCounter(event.track)
        try:
            await counter.wait_for(1, timeout=20)
        finally:
            await counter.stop()
        return time.perf_counter() - started
    finally:
        await room.disconnect()


async def first_frame_direct() -> float:
    started = time.perf_counter()
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    readers: list[asyncio.Task[None]] = []

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def first() -> None:
            await track.recv()
            if not arrived.done():
                arrived.set_result(time.perf_counter() - started)

        if track.kind == "video":
            readers.append(asyncio.create_task(first()))

    sender.addTransceiver(SyntheticVideoTrack(WIDTH, HEIGHT), direction="sendonly")
    try:
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        return await asyncio.wait_for(arrived, 20)
    finally:
        await sender.close()
        await receiver.close()


async def measure(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        env = {"PATH": os.environ["PATH"], "OPENROOMS_MEDIA_ICE_HOSTS": "127.0.0.1"}
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/openrooms"), "serve", "--state-dir", str(state), "--http", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            base = ""
            for line in server.stdout:
                if found := re.search(r"HTTP (http://\S+)", line):
                    base = found.group(1)
                if "engine running" in line:
                    break
            credentials = json.loads((state / "credentials.json").read_text())
            url = base.replace("http://", "ws://") + "/signaling"
            publisher = await connect(
                url,
                token(credentials, "presenter", "bench"),
                "bench",
                [SyntheticVideoTrack(WIDTH, HEIGHT), ToneAudioTrack()],
            )
            ours, direct = [], []
            try:
                for n in range(runs):
                    ours.append(await first_frame_through_openrooms(url, credentials, n))
                    direct.append(await first_frame_direct())
            finally:
                await publisher.disconnect()
        finally:
            server.terminate()
            server.wait(timeout=30)
    p50_ours, p50_direct = statistics.median(ours), statistics.median(direct)
    print("| measure | ours (connect() through openrooms serve) | baseline (two aiortc peers, direct) | ratio |")
    print("|---|---|---|---|")
    print(f"| first remote frame p50 | {p50_ours:.3f} s | {p50_direct:.3f} s | {p50_ours / p50_direct:.2f}x |")
    worst, worst_direct = max(ours), max(direct)
    ratio = worst / worst_direct
    print(f"| first remote frame max ({runs} runs) | {worst:.3f} s | {worst_direct:.3f} s | {ratio:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
