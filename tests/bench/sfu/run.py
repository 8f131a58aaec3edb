"""SFU benchmark: our `media.sfu.Router` against aiortc's `MediaRelay`, in one run.

    .venv/bin/python tests/bench/sfu/run.py [--subscribers 1,3,5] [--warmup 5] [--seconds 15]
                                            [--width 640] [--height 360]

Every participant and the SFU is its own process (this file, with `--role`), all on loopback
(aioice's host addresses patched to 127.0.0.1, like tests/integration/test_sfu_forwarding.py):

* `--role sfu --mode router`: our path. A `Router` with one MAX_BUNDLE PeerConnection per
  participant, forwarding RTP without decoding, as the session layer drives it.
* `--role sfu --mode relay`: the baseline. aiortc's `MediaRelay`: the publisher's tracks are
  decoded once, and each subscriber gets `relay.subscribe(track)` on its own sender, so one VP8 and
  one Opus encode per subscriber.
* `--role pub`: one aiortc publisher, `SyntheticVideoTrack(width, height)` (VP8, aiortc's own
  bitrate control) and `ToneAudioTrack()` (Opus), sendonly.
* `--role sub`: one aiortc subscriber, decoding every frame it receives.

Signaling is a minimal local HTTP offer/answer on the SFU process (not RSP): the publisher offers
(`POST /publish`), the SFU answers; a subscriber `POST /subscribe`s, the SFU subscribes it to every
published track and sends its offer, the subscriber answers (`POST /answer/{id}`). "Connect" below
is the moment the subscriber sends `/subscribe`; "first frame" is the first decoded remote video
frame.

For each mode and each N, the orchestrator (no `--role`) starts the SFU, the publisher and N
subscribers, waits `--warmup` seconds after the last subscriber saw its first frame, then measures
over `--seconds`: the SFU process's user+sys CPU (/proc/<pid>/stat), the packets its subscriber
senders sent (the SR packet counter of each `RTCRtpSender`, which the router's injector keeps too),
the frames each subscriber decoded, and the CPU of the publisher + subscribers and of everything
else on the machine (/proc/stat). Router only (MediaRelay re-encodes, so packets cannot be matched),
latency by each RTP packet's last bytes (payload, forwarded unchanged): publisher
`RTCDtlsTransport._send_rtp` → subscriber `_handle_rtp_data` (end to end), and in the SFU from
SRTP unprotect (pylibsrtp `Session`, below whatever aiortc layers the SFU skips) to the send
step's call (`SenderInjector.forward`, whose wire rewrites, writes, protects and sends in one C call; for the relay,
SRTP protect). The SFU CPU figures include these two hooks (a dict lookup and a clock read each).
Prints a markdown table, the router/relay ratios and the marginal cost per added subscriber.

`--modes router` measures one SFU only; `--profile DIR` also samples the SFU with py-spy over
each window (wall-clock samples, so a busy machine inflates syscalls; the CPU figures of such a
run are perturbed and not for reporting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

TICK = os.sysconf("SC_CLK_TCK")


def loopback_ice() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def bundled() -> Any:
    from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def msid_by_mid(sdp: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for section in sdp.split("\r\nm=")[1:]:
        mid = re.search(r"a=mid:(\S+)", section)
        msid = re.search(r"a=msid:\S+ (\S+)", section)
        if mid and msid:
            out[mid.group(1)] = msid.group(1)
    return out


# --- SFU process ------------------------------------------------------------------------------


async def sfu_main(mode: str, port: int) -> None:
    import pylibsrtp
    from aiohttp import web
    from aiortc import RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from domain.ids import ParticipantSid, RoomSid, TrackSid
    from media.sfu import Router, SfuConfig

    arrived: dict[bytes, float] = {}
    in_sfu: list[float] = []  # per forwarded packet: arrival (decrypted) → handed to the send step
    original_unprotect, original_protect = pylibsrtp.Session.unprotect, pylibsrtp.Session.protect

    def unprotect(self: Any, data: bytes) -> bytes:
        plain: bytes = original_unprotect(self, data)
        arrived[plain[-16:]] = time.monotonic()
        if len(arrived) > 20000:
            arrived.clear()
        return plain

    def protect(self: Any, data: bytes) -> bytes:
        at = arrived.get(data[-16:])
        if at is not None:
            in_sfu.append(time.monotonic() - at)
        return original_protect(self, data)

    # At the SRTP session, whichever aiortc layers the SFU uses or skips above it. The router's send
    # path rewrites, writes, protects and sends in one C call (media.sfu.wire), so for it the clock
    # stops when `SenderInjector.forward` is called with the packet's payload, just before that call.
    pylibsrtp.Session.unprotect, pylibsrtp.Session.protect = unprotect, protect  # type: ignore[method-assign]
    from media.sfu import hooks

    original_forward = hooks.SenderInjector.forward

    def forward(self: Any, payload_type: int, marker: int, seq: int, ts: int, payload: bytes, *rest: Any) -> bool:
        at = arrived.get(payload[-16:])
        if at is not None:
            in_sfu.append(time.monotonic() - at)
        return original_forward(self, payload_type, marker, seq, ts, payload, *rest)

    hooks.SenderInjector.forward = forward  # type: ignore[method-assign]

    router = Router(RoomSid("RM" + "0" * 32), SfuConfig(max_bitrate_bps=1_500_000)) if mode == "router" else None
    relay = MediaRelay() if mode == "relay" else None
    relay_tracks: list[Any] = []
    track_sids: list[Any] = []
    pcs: dict[str, Any] = {}
    subscriber_pcs: list[Any] = []
    counter = 0

    async def publish(request: web.Request) -> web.Response:
        body = await request.json()
        pc = bundled()
        pcs["pub"] = pc
        offer = RTCSessionDescription(body["sdp"], body["type"])
        if router is not None:
            sid = ParticipantSid("PA" + "0" * 32)
            router.add_participant(sid, pc)
            await pc.setRemoteDescription(offer)
            mapping = {mid: TrackSid(f"MT-{track_id}") for mid, track_id in msid_by_mid(offer.sdp).items()}
            router.publish_tracks(sid, mapping)
            track_sids.extend(mapping.values())
        else:
            pc.on("track", relay_tracks.append)
            await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})

    async def subscribe(request: web.Request) -> web.Response:
        nonlocal counter
        counter += 1
        key = f"sub{counter}"
        pc = bundled()
        pcs[key] = pc
        subscriber_pcs.append(pc)
        if router is not None:
            sid = ParticipantSid(f"PA{counter:032d}")
            router.add_participant(sid, pc)
            for track_sid in track_sids:
                router.subscribe(sid, track_sid, msid_track_id=f"sub-{track_sid}")
            offer = await pc.createOffer()
            router.offer_sent(sid)
        else:
            assert relay is not None
            for track in relay_tracks:
                pc.addTrack(relay.subscribe(track))
            offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        return web.json_response({"id": key, "sdp": pc.localDescription.sdp, "type": pc.localDescription.type})

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        await pcs[request.match_info["id"]].setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        return web.json_response({})

    async def stats(request: web.Request) -> web.Response:
        sent = {"video": 0, "audio": 0}
        for pc in subscriber_pcs:
            for transceiver in pc.getTransceivers():
                sent[transceiver.kind] += transceiver.sender._RTCRtpSender__packet_count
        out: dict[str, Any] = {"pid": os.getpid(), "sent": sent, "in_sfu": sorted(in_sfu)}
        in_sfu.clear()
        if router is not None:
            out["received"] = sum(router.published_track(t).packets_received for t in track_sids)
        return web.json_response(out)

    app = web.Application()
    app.router.add_post("/publish", publish)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_post("/answer/{id}", answer)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# --- publisher / subscriber processes ---------------------------------------------------------


def record_rtp(attr: str, times: dict[str, float]) -> None:
    """Record when each plaintext RTP packet leaves (`_send_rtp`) or arrives (`_handle_rtp_data`)
    at this process's DTLS transport, keyed by its last 32 bytes (payload, which the router
    forwards unchanged)."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    original = getattr(RTCDtlsTransport, attr)

    async def wrapped(self: Any, data: bytes, *args: Any, **kwargs: Any) -> None:
        times[data[-32:].hex()] = time.monotonic()
        await original(self, data, *args, **kwargs)

    setattr(RTCDtlsTransport, attr, wrapped)


def noise_track(width: int, height: int) -> Any:
    """`SyntheticVideoTrack` with noise in the top eighth of the luma plane, so VP8 sends about as
    many packets a second as a camera at this size (the plain gradient fits in one packet a frame)."""
    from av import VideoFrame

    from media.client.synthetic_track import SyntheticVideoTrack

    class NoiseVideoTrack(SyntheticVideoTrack):
        async def recv(self) -> VideoFrame:
            frame = await super().recv()
            plane = frame.planes[0]
            rows = self.height // 8
            plane.update(os.urandom(plane.line_size * rows) + bytes(plane)[plane.line_size * rows :])
            return frame

    return NoiseVideoTrack(width, height)


async def pub_main(port: int, width: int, height: int, content: str) -> None:
    import aiohttp
    from aiortc import RTCSessionDescription

    from media.client.synthetic_track import SyntheticVideoTrack, ToneAudioTrack

    tx: dict[str, float] = {}
    record_rtp("_send_rtp", tx)
    pc = bundled()
    video = noise_track(width, height) if content == "noise" else SyntheticVideoTrack(width, height)
    pc.addTransceiver(video, direction="sendonly")
    pc.addTransceiver(ToneAudioTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}/publish", json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        ) as resp,
    ):
        body = await resp.json()
    await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    print(json.dumps({"tx": tx}), flush=True)


async def sub_main(port: int) -> None:
    import aiohttp
    from aiortc import RTCSessionDescription
    from av import VideoFrame

    video_times: list[float] = []
    audio_frames = [0]
    rx: dict[str, float] = {}
    record_rtp("_handle_rtp_data", rx)
    started = time.monotonic()

    async def drain(track: Any) -> None:
        while True:
            frame = await track.recv()
            if isinstance(frame, VideoFrame):
                video_times.append(time.monotonic())
                if len(video_times) == 1:
                    print(json.dumps({"first_frame_s": video_times[0] - started}), flush=True)
            else:
                audio_frames[0] += 1

    pc = bundled()
    pc.on("track", lambda track: asyncio.ensure_future(drain(track)))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/subscribe") as resp:
            offer = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        async with http.post(
            f"http://127.0.0.1:{port}/answer/{offer['id']}",
            json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
        ) as resp:
            await resp.read()

    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    print(json.dumps({"video_times": video_times, "audio_frames": audio_frames[0], "rx": rx}), flush=True)


# --- orchestrator ------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """user+sys seconds of a process (all its threads)."""
    return sum(proc_user_sys(pid))


def proc_user_sys(pid: int) -> tuple[float, float]:
    """(user, sys) seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of the whole machine, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK, sum(values[:8]) / TICK


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def get_stats(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        return json.loads(resp.read())


def profile(pid: int, mode: str, n: int, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """With `--profile DIR`: py-spy samples the SFU process over the window (non-blocking, so the
    SFU is not paused; idle samples are dropped) into DIR/{mode}-{n}.txt, collapsed stacks."""
    if args.profile is None:
        return None
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--rate", "200",
         "--nonblocking", "--format", "raw", "--output", str(out / f"{mode}-{n}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def one_run(mode: str, n: int, args: argparse.Namespace, port: int) -> dict[str, Any]:
    procs: list[subprocess.Popen[str]] = []
    try:
        sfu = spawn("--role", "sfu", "--mode", mode, "--port", str(port))
        procs.append(sfu)
        assert sfu.stdout is not None
        assert sfu.stdout.readline().strip() == "ready"
        pub = spawn(
            "--role", "pub", "--port", str(port), "--width", str(args.width), "--height", str(args.height),
            "--content", args.content,
        )  # fmt: skip
        procs.append(pub)
        time.sleep(2.0)
        subs = []
        for _ in range(n):
            sub = spawn("--role", "sub", "--port", str(port))
            procs.append(sub)
            subs.append(sub)
            time.sleep(0.3)  # sequential joins, so connect→first-frame is not all contention
        first_frames = []
        for sub in subs:
            assert sub.stdout is not None
            first_frames.append(json.loads(sub.stdout.readline())["first_frame_s"])
        time.sleep(args.warmup)
        ours = [p.pid for p in procs if p is not sfu]
        sys0 = proc_user_sys(sfu.pid)[1]
        s0, c0, o0, m0, t0 = (
            get_stats(port),
            proc_cpu(sfu.pid),
            sum(map(proc_cpu, ours)),
            machine_cpu(),
            time.monotonic(),
        )
        profiler = profile(sfu.pid, mode, n, args)
        time.sleep(args.seconds)
        if profiler is not None:
            profiler.wait(timeout=30)
        s1, c1, o1, m1, t1 = (
            get_stats(port),
            proc_cpu(sfu.pid),
            sum(map(proc_cpu, ours)),
            machine_cpu(),
            time.monotonic(),
        )
        sys1 = proc_user_sys(sfu.pid)[1]
        for sub in subs:
            sub.send_signal(signal.SIGTERM)
        pub.send_signal(signal.SIGTERM)
        fps = []
        delays: list[float] = []
        out, _ = pub.communicate(timeout=10)
        tx = json.loads(out.strip().splitlines()[-1])["tx"]
        for sub in subs:
            out, _ = sub.communicate(timeout=10)
            result = json.loads(out.strip().splitlines()[-1])
            times = result["video_times"]
            fps.append(sum(1 for t in times if t0 <= t <= t1) / (t1 - t0))
            delays += [t - tx[k] for k, t in result["rx"].items() if k in tx and t0 <= t <= t1]
        delays.sort()
        wall = t1 - t0
        sfu_cpu = c1 - c0
        packets = sum(s1["sent"].values()) - sum(s0["sent"].values())
        video_packets = s1["sent"]["video"] - s0["sent"]["video"]
        clients_cpu = o1 - o0
        busy = m1[0] - m0[0]
        return {
            "mode": mode,
            "n": n,
            "sfu_cpu_pct": 100 * sfu_cpu / wall,
            "sfu_sys_pct": 100 * (sys1 - sys0) / wall,
            "pkt_per_s": packets / wall,
            "video_pkt_per_s": video_packets / wall,
            "us_per_pkt": 1e6 * sfu_cpu / packets if packets else float("nan"),
            "ingest_pkt_per_s": (s1["received"] - s0["received"]) / wall if "received" in s1 else None,
            "fps_min": min(fps),
            "fps_mean": sum(fps) / len(fps),
            "first_frame_s": first_frames,
            "clients_cpu_pct": 100 * clients_cpu / wall,
            "other_cpu_pct": 100 * (busy - sfu_cpu - clients_cpu) / wall,
            "idle_pct": 100 * ((m1[1] - m0[1]) - busy) / wall,
            "matched_packets": len(delays),
            "in_sfu_ms_p50": 1e3 * s1["in_sfu"][len(s1["in_sfu"]) // 2] if s1["in_sfu"] else None,
            "in_sfu_ms_p99": 1e3 * s1["in_sfu"][int(len(s1["in_sfu"]) * 0.99)] if s1["in_sfu"] else None,
            "latency_ms_p50": 1e3 * delays[len(delays) // 2] if delays else None,
            "latency_ms_p99": 1e3 * delays[int(len(delays) * 0.99)] if delays else None,
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def latency(r: dict[str, Any]) -> str:
    if r["latency_ms_p50"] is None:
        return "n/a (re-encoded)"
    if r["in_sfu_ms_p50"] is None:
        return f"{r['latency_ms_p50']:.2f} / {r['latency_ms_p99']:.2f} ms"
    return (
        f"{r['latency_ms_p50']:.2f} / {r['latency_ms_p99']:.2f} ms "
        f"(in SFU {r['in_sfu_ms_p50']:.2f} / {r['in_sfu_ms_p99']:.2f} ms)"
    )


def orchestrate(args: argparse.Namespace) -> None:
    ns = [int(x) for x in args.subscribers.split(",")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "media/sfu"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    commit = commit.strip() + (" with uncommitted media/sfu changes" if dirty.strip() else "")
    print(
        f"# SFU bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}, commit {commit}, "
        f"{args.width}x{args.height} {args.content} VP8 + Opus, warmup {args.warmup}s, window {args.seconds}s",
        flush=True,
    )
    results: dict[tuple[str, int], dict[str, Any]] = {}
    port = args.port
    modes = args.modes.split(",")
    for n in ns:
        for mode in modes:
            port += 1
            r = one_run(mode, n, args, port)
            results[(mode, n)] = r
            print(json.dumps(r), flush=True)
    print()
    print(
        "| mode | N | SFU CPU % (of which sys) | pkts/s out | µs SFU CPU / pkt | fps (min/mean) | "
        "connect→first frame (max) | pub→sub RTP latency p50 / p99 | clients CPU % | other CPU % | idle % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (mode, n), r in results.items():
        print(
            f"| {mode} | {n} | {r['sfu_cpu_pct']:.1f} ({r['sfu_sys_pct']:.1f}) | {r['pkt_per_s']:.0f} | "
            f"{r['us_per_pkt']:.0f} | "
            f"{r['fps_min']:.1f} / {r['fps_mean']:.1f} | {max(r['first_frame_s']):.2f} s | {latency(r)} | "
            f"{r['clients_cpu_pct']:.0f} | {r['other_cpu_pct']:.0f} | {r['idle_pct']:.0f} |"
        )
    print()
    for n in ns if set(modes) == {"router", "relay"} else []:
        ours, base = results[("router", n)], results[("relay", n)]
        print(
            f"N={n}: SFU CPU per subscription router {ours['sfu_cpu_pct'] / n:.1f} % vs relay "
            f"{base['sfu_cpu_pct'] / n:.1f} % (relay/router {base['sfu_cpu_pct'] / ours['sfu_cpu_pct']:.1f}x); "
            f"µs/pkt router {ours['us_per_pkt']:.0f} vs relay {base['us_per_pkt']:.0f} "
            f"(relay/router {base['us_per_pkt'] / ours['us_per_pkt']:.1f}x)"
        )
    if len(ns) > 1:
        lo, hi = min(ns), max(ns)
        for mode in modes:
            slope = (results[(mode, hi)]["sfu_cpu_pct"] - results[(mode, lo)]["sfu_cpu_pct"]) / (hi - lo)
            pkts = results[(mode, hi)]["pkt_per_s"] - results[(mode, lo)]["pkt_per_s"]
            marginal_us = 1e4 * slope * (hi - lo) / pkts
            print(
                f"{mode}: marginal SFU CPU per added subscriber (N={lo}→{hi}) {slope:.1f} % of a core, "
                f"per added forwarded packet {marginal_us:.0f} µs"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["sfu", "pub", "sub"])
    parser.add_argument("--mode", choices=["router", "relay"], default="router")
    parser.add_argument("--port", type=int, default=18700)
    parser.add_argument("--subscribers", default="1,3,5")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--modes", default="router,relay", help="which SFUs to measure (ratios need both)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the SFU over each window (perturbs the CPU figures)")
    parser.add_argument("--content", choices=["noise", "gradient"], default="noise")
    args = parser.parse_args()
    if args.role is None:
        orchestrate(args)
        return
    loopback_ice()
    if args.role == "sfu":
        asyncio.run(sfu_main(args.mode, args.port))
    elif args.role == "pub":
        asyncio.run(pub_main(args.port, args.width, args.height, args.content))
    else:
        asyncio.run(sub_main(args.port))


if __name__ == "__main__":
    main()
