"""TURN for peer-to-peer rooms: the credentials `iced` hands out, against a real coturn.

A coturn `turnserver` (tests/coturn.py) runs on 127.0.0.1 with the TURN REST API
(`use-auth-secret`, `static-auth-secret`); the clients are real aiortc peers configured the way a
browser is from the `iced` answer, with `iceTransportPolicy: 'relay'` so that nothing but relayed
candidates can carry media (aiortc 1.16 passes the policy to aioice, which then gathers no host or
server-reflexive candidate at all).

Waiting is on conditions with deadlines, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from media.client.negotiator import rtc_configuration
from media.client.synthetic_track import ToneAudioTrack
from media.session.ice_servers import IceServerSettings, ice_servers
from media.signaling.messages import IceServer
from tests.coturn import Coturn

SECRET = "integration-turn-secret"
TIMEOUT = 20.0
FRAMES = 25  # 0.5 s of 20 ms audio frames


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with Coturn(tmp_path_factory.mktemp("coturn"), secret=SECRET) as server:
        yield server


def settings_for(coturn: Coturn, **overrides: Any) -> IceServerSettings:
    """The settings a deployment with this coturn has (`OPENROOMS_TURN_URLS`, `OPENROOMS_TURN_SECRET`)."""
    return IceServerSettings(**{"turn_urls": (coturn.url,), "turn_secret": SECRET, **overrides})


def sdp_candidates(sdp: str) -> list[tuple[str, int, str]]:
    """(address, port, type) of every `a=candidate` line (foundation component transport priority
    address port `typ` type ...)."""
    lines = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert all(len(f) >= 8 and f[6] == "typ" for f in lines), sdp
    return [(f[4], int(f[5]), f[7]) for f in lines]


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """Offer/answer with the candidates in the SDP (aiortc gathers before it returns)."""
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def frames_from(track: MediaStreamTrack, count: int) -> int:
    received = 0
    while received < count:
        await track.recv()
        received += 1
    return received


async def eventually_in_log(coturn: Coturn, pattern: str) -> re.Match[str]:
    """Wait (polling, with a deadline) until coturn has logged a line matching `pattern`."""
    deadline = time.monotonic() + TIMEOUT
    while (found := re.search(pattern, coturn.log())) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"coturn never logged {pattern!r}:\n{coturn.log()[-4000:]}")
        await asyncio.sleep(0.05)
    return found


async def test_two_peers_exchange_audio_through_the_turn_relay_with_handed_out_credentials(coturn: Coturn):
    now = time.time()
    alice = RTCPeerConnection(rtc_configuration(ice_servers(settings_for(coturn), "alice", now), relay_only=True))
    bob = RTCPeerConnection(rtc_configuration(ice_servers(settings_for(coturn), "bob", now), relay_only=True))
    arrived: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @bob.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if not arrived.done():
            arrived.set_result(track)

    alice.addTransceiver(ToneAudioTrack(), direction="sendonly")
    try:
        await connect(alice, bob)

        track = await asyncio.wait_for(arrived, TIMEOUT)
        assert await asyncio.wait_for(frames_from(track, FRAMES), TIMEOUT) == FRAMES

        low, high = coturn.relay_ports
        for pc in (alice, bob):
            candidates = sdp_candidates(pc.localDescription.sdp)
            assert candidates, pc.localDescription.sdp
            assert all(
                kind == "relay" and address == "127.0.0.1" and low <= port <= high for address, port, kind in candidates
            )
            ice = pc.getTransceivers()[0].receiver.transport.transport
            assert {c.type for c in ice.iceGatherer.getLocalCandidates()} == {"relay"}
            assert {c.type for c in ice.getRemoteCandidates()} == {"relay"}
            assert ice.state == "completed"
        assert alice.connectionState == bob.connectionState == "connected"
    finally:
        await alice.close()
        await bob.close()

    # coturn saw each handed-out username, allocated for it, and relayed the media between them
    expiry = int(now) + 86400
    for identity in ("alice", "bob"):
        await eventually_in_log(coturn, rf"user <{expiry}:{identity}>: incoming packet ALLOCATE processed, success")
    sent = await eventually_in_log(coturn, peer_usage(f"{expiry}:alice"))
    received = await eventually_in_log(coturn, peer_usage(f"{expiry}:bob"))
    assert int(sent.group("sent")) >= FRAMES  # every frame bob decoded came through both allocations
    assert int(received.group("received")) >= FRAMES


def peer_usage(username: str) -> str:
    """coturn's count of packets between an allocation and its peers, logged when it is deleted."""
    counts = r"rp=(?P<received>\d+), rb=\d+, sp=(?P<sent>\d+)"
    return rf"peer usage: realm=<openrooms\.test>, username=<{re.escape(username)}>, {counts}"


@contextlib.asynccontextmanager
async def turn_allocation(coturn: Coturn, server: IceServer) -> AsyncIterator[TurnClientUdpProtocol]:
    """A TURN allocation made with aioice's client, as a browser makes one; deleted at the end."""
    assert isinstance(server.username, str) and isinstance(server.credential, str)
    username, password = server.username, server.credential
    transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(coturn.address, username, password, lifetime=600, channel_refresh_time=500),
        remote_addr=coturn.address,
    )
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        yield client
        await asyncio.wait_for(client.delete(), TIMEOUT)
    finally:
        transport.close()


async def permit(client: TurnClientUdpProtocol, peer: str) -> int:
    """Ask the TURN server to let `peer` reach the allocation (CreatePermission: it sends nothing to
    the peer); the answer's code, 200 when allowed."""
    request = stun.Message(message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST)
    request.attributes["XOR-PEER-ADDRESS"] = (peer, 9)
    try:
        await asyncio.wait_for(client.request_with_retry(request), TIMEOUT)
    except stun.TransactionFailed as refused:
        return refused.response.error_code
    return 200


async def test_fresh_credentials_get_a_relay_allocation(coturn: Coturn):
    (server,) = ice_servers(settings_for(coturn), "carol", time.time())

    async with turn_allocation(coturn, server) as allocation:
        assert allocation.relayed_address is not None
        address, port = allocation.relayed_address

    low, high = coturn.relay_ports
    assert address == "127.0.0.1" and low <= port <= high


@pytest.mark.parametrize(
    ("settings", "issued_ago"),
    [
        ({"ttl_s": 60}, 120.0),  # expired a minute ago
        ({"turn_secret": "not-the-turn-servers-secret"}, 0.0),
    ],
    ids=["expired", "wrong-secret"],
)
async def test_credentials_coturn_cannot_verify_are_refused_with_401(coturn: Coturn, settings, issued_ago):
    (server,) = ice_servers(settings_for(coturn, **settings), "mallory", time.time() - issued_ago)

    with pytest.raises(stun.TransactionFailed) as refused:
        async with turn_allocation(coturn, server):
            pass

    assert refused.value.response.error_code == 401


async def test_a_peer_with_expired_credentials_gathers_no_relay_candidate(coturn: Coturn):
    expired = ice_servers(settings_for(coturn, ttl_s=60), "late-peer", time.time() - 120)
    pc = RTCPeerConnection(rtc_configuration(expired, relay_only=True))
    pc.addTransceiver(ToneAudioTrack(), direction="sendonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())

        assert sdp_candidates(pc.localDescription.sdp) == []
    finally:
        await pc.close()
    username = expired[0].username
    assert isinstance(username, str)
    await eventually_in_log(coturn, rf"user <{re.escape(username)}>: incoming packet message processed, error 401")


# --- the production configuration of docs/turn.md -------------------------------------------------


def documented_turnserver_conf() -> str:
    """The `turnserver.conf` block of docs/turn.md, as an operator copies it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "turn.md").read_text()
    blocks = re.findall(r"^```ini\n(.*?)^```$", doc, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "docs/turn.md should show exactly one turnserver.conf"
    return str(blocks[0])


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.example.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert, pkey = directory / "fullchain.pem", directory / "privkey.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pkey.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, pkey


def on_this_machine(conf: str, cert: Path, pkey: Path) -> str:
    """What an operator fills in, with loopback for the documented addresses; logs go to the test's
    file instead of syslog. One private peer is allowed, as the doc shows, to see that exceptions work."""
    for placeholder, value in {
        "listening-ip=203.0.113.10": "listening-ip=127.0.0.1",
        "relay-ip=203.0.113.10": "relay-ip=127.0.0.1",
        "static-auth-secret=CHANGE-ME-to-the-value-of-OPENROOMS_TURN_SECRET": f"static-auth-secret={SECRET}",
        "cert=/etc/letsencrypt/live/turn.example.com/fullchain.pem": f"cert={cert}",
        "pkey=/etc/letsencrypt/live/turn.example.com/privkey.pem": f"pkey={pkey}",
        "\nsyslog\n": "\n",
    }.items():
        assert placeholder in conf, f"docs/turn.md no longer has {placeholder!r}"
        conf = conf.replace(placeholder, value)
    return conf + "allowed-peer-ip=10.0.0.20\n"


async def test_the_documented_coturn_configuration_accepts_handed_out_credentials_and_denies_private_peers(tmp_path):
    cert, pkey = self_signed_certificate(tmp_path)
    conf = on_this_machine(documented_turnserver_conf(), cert, pkey)
    with Coturn(tmp_path / "coturn", secret=SECRET, config=conf) as documented:
        (server,) = ice_servers(settings_for(documented), "alice", time.time())
        (expired,) = ice_servers(settings_for(documented, ttl_s=60), "alice", time.time() - 120)

        async with turn_allocation(documented, server) as allocation:
            assert allocation.relayed_address is not None
            assert await permit(allocation, "10.0.0.20") == 200  # allowed-peer-ip
            assert await permit(allocation, "127.0.0.1") == 403  # loopback: the TURN server itself
            assert await permit(allocation, "10.1.2.3") == 403  # the TURN server's private network
            assert await permit(allocation, "169.254.169.254") == 403  # cloud metadata
        with pytest.raises(stun.TransactionFailed) as refused:
            async with turn_allocation(documented, expired):
                pass
        assert refused.value.response.error_code == 401
