"""Driving unmodified twilio-video SDKs in Chromium pages: connect, record events, measure media.

    page = open_page()                                   # the `open_page` fixture: own context, SDK loaded
    outcome = connect(page, service, "alice", "standup")  # {connected, sid, participantSid} or {code, message}
    wait_log(page, "trackSubscribed:bob:video")
    wait_media_grows(page, "bob")                        # frames decoded and audio packets received, growing
    start_sending_data(page, "hi")                       # a LocalDataTrack sending "hi" every 100 ms
    wait_log(other, "message:alice:hi")

A page opened with `HOLD_SOCKETS` as its init script can lose its signaling socket
(`DROP_SIGNALING`) and be kept offline (`window.offline = true`) while the SDK retries.

Each page records the SDK's public events in `window.log` as `event:identity:kind` strings; tests
wait on them and on media counters with `wait_for_function` (deterministic, with timeouts), never
on fixed sleeps.
"""

from __future__ import annotations

from typing import Any

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

TIMEOUT_MS = 30_000
AUDIO_AND_VIDEO = {"audio": True, "video": {"width": 320, "height": 240}}

CONNECT = """async ([token, wsServer, name, options]) => {
  window.log = [];
  const log = (entry) => window.log.push(entry);
  const watch = (p) => {
    p.on('trackPublished', (pub) => log(`trackPublished:${p.identity}:${pub.kind}`));
    p.on('trackUnpublished', (pub) => log(`trackUnpublished:${p.identity}:${pub.kind}`));
    p.on('trackDisabled', (pub) => log(`trackDisabled:${p.identity}:${pub.kind}`));
    p.on('trackEnabled', (pub) => log(`trackEnabled:${p.identity}:${pub.kind}`));
  };
  try {
    const defaults = {name, wsServer, iceServers: [], insights: false};
    const merged = Object.assign(defaults, options);
    if (merged.iceServers === null) delete merged.iceServers;  // the SDK then asks the server (`iced`)
    const room = await Twilio.Video.connect(token, merged);
    window.room = room;
    room.participants.forEach((p) => { log(`present:${p.identity}`); watch(p); });
    room.on('participantConnected', (p) => { log(`participantConnected:${p.identity}`); watch(p); });
    room.on('participantDisconnected', (p) => log(`participantDisconnected:${p.identity}`));
    room.on('participantReconnecting', (p) => log(`participantReconnecting:${p.identity}`));
    room.on('participantReconnected', (p) => log(`participantReconnected:${p.identity}`));
    room.on('trackSubscribed', (track, publication, p) => {
      log(`trackSubscribed:${p.identity}:${track.kind}`);
      if (track.kind === 'data') {
        track.on('message', (m) => {
          if (!window.log.includes(`message:${p.identity}:${m}`)) log(`message:${p.identity}:${m}`);
        });
        return;
      }
      const element = track.attach();
      element.id = `remote-${track.kind}-${p.identity}`;
      element.muted = true;  // autoplay without a user gesture; the media is still received and decoded
      document.body.appendChild(element);
    });
    room.on('trackUnsubscribed', (track, publication, p) => {
      log(`trackUnsubscribed:${p.identity}:${track.kind}`);
      if (track.kind !== 'data') track.detach().forEach((element) => element.remove());
    });
    room.on('reconnecting', (error) => log(`reconnecting:${error ? error.code : 'none'}`));
    room.on('reconnected', () => log('reconnected'));
    room.on('disconnected', (r, error) => log(`disconnected:${error ? error.code : 'none'}`));
    return {connected: true, sid: room.sid, participantSid: room.localParticipant.sid, mediaRegion: room.mediaRegion};
  } catch (error) {
    return {connected: false, code: error.code, message: error.message};
  }
}"""

MEASURE = """(identity) => {
  // A sampler in the page: wait_for_function predicates are synchronous, room.getStats() is not.
  window.media = window.media || {};
  window.media[identity] = {frames: 0, audioPackets: 0};
  setInterval(async () => {
    const video = document.getElementById(`remote-video-${identity}`);
    const p = Array.from(window.room.participants.values()).find((p) => p.identity === identity);
    const audioSids = p ? Array.from(p.audioTracks.keys()) : [];
    const reports = await window.room.getStats();
    const audio = reports.flatMap((r) => r.remoteAudioTrackStats)
      .filter((s) => audioSids.includes(s.trackSid))
      .reduce((n, s) => n + (s.packetsReceived || 0), 0);
    const frames = video ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
    window.media[identity] = {frames, audioPackets: audio};
  }, 100);
}"""

SEND_DATA = """async (text) => {
  const track = new Twilio.Video.LocalDataTrack();
  await window.room.localParticipant.publishTrack(track);
  // Messages sent before a peer's channel is open are lost: keep sending until the test has seen them.
  window.sending = setInterval(() => track.send(text), 100);
}"""


HOLD_SOCKETS = """(() => {
  // The page's WebSockets, kept in window.sockets; while window.offline is true new ones fail at once.
  const Native = window.WebSocket;
  window.sockets = [];
  window.offline = false;
  window.WebSocket = class extends Native {
    constructor(url, ...rest) {
      super(window.offline ? 'ws://127.0.0.1:9/' : url, ...rest);
      window.sockets.push(this);
    }
  };
})();"""
DROP_SIGNALING = "window.sockets.filter((ws) => ws.url.endsWith('/signaling')).forEach((ws) => ws.close(4000))"


SELECTED_CANDIDATE_PAIRS = """async () => {
  // The selected pair of each of the SDK's PeerConnections' transports: each end's candidate type (host,
  // srflx, prflx, relay) and transport address.
  const pcs = Array.from(window.room._signaling._peerConnectionManager._peerConnections.values());
  const pairs = [];
  const end = (c) => ({type: c.candidateType, address: `${c.address}:${c.port}`});
  for (const pc of pcs.map((p) => p._peerConnection)) {
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) {  // the pair media flows on
        const pair = stats.get(r.selectedCandidatePairId);
        pairs.push({local: end(stats.get(pair.localCandidateId)), remote: end(stats.get(pair.remoteCandidateId))});
      }
    });
  }
  return pairs;
}"""


def token(service: Any, identity: str, room: str, secret: str | None = None) -> str:
    c = service.credentials
    access = AccessToken(c["account_sid"], c["api_key_sid"], secret or c["api_key_secret"], identity=identity)
    access.add_grant(VideoGrant(room=room))
    return str(access.to_jwt())


def signaling_url(service: Any) -> str:
    return str(service.base_url).replace("http://", "ws://") + "/signaling"


def connect(page: Any, service: Any, identity: str, room: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """`Twilio.Video.connect` in the page; what it gave (connected or the TwilioError's code)."""
    outcome: dict[str, Any] = page.evaluate(
        CONNECT, [token(service, identity, room), signaling_url(service), room, options or AUDIO_AND_VIDEO]
    )
    return outcome


def wait_log(page: Any, entry: str) -> None:
    page.wait_for_function("(entry) => window.log.includes(entry)", arg=entry, timeout=TIMEOUT_MS)


def wait_media_grows(page: Any, identity: str) -> None:
    """The remote video from `identity` decodes frames and its audio packets arrive, and both keep growing."""
    page.evaluate(MEASURE, identity)
    grown = "([identity, n, a]) => window.media[identity].frames > n && window.media[identity].audioPackets > a"
    page.wait_for_function(grown, arg=[identity, 10, 10], timeout=TIMEOUT_MS)
    before = page.evaluate("(identity) => window.media[identity]", identity)
    page.wait_for_function(
        grown, arg=[identity, before["frames"] + 10, before["audioPackets"] + 10], timeout=TIMEOUT_MS
    )


def count_log(page: Any, entry: str) -> int:
    return int(page.evaluate("(entry) => window.log.filter((e) => e === entry).length", entry))


def wait_log_count(page: Any, entry: str, count: int) -> None:
    """Until `entry` is in the page's log `count` times."""
    page.wait_for_function(
        "([entry, n]) => window.log.filter((e) => e === entry).length >= n", arg=[entry, count], timeout=TIMEOUT_MS
    )


def start_sending_data(page: Any, text: str) -> None:
    page.evaluate(SEND_DATA, text)


def media_metrics(service: Any) -> dict[str, float]:
    """The `openrooms_media_*` samples of the service's /metrics, by sample name with labels."""
    body = service.request("GET", "/metrics").text
    samples: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("openrooms_media_"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
