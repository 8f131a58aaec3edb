"""The unmodified twilio-video SDK in Debian's Chromium, pointed at openrooms.

The SDK from npm loads, and its `connect()` with the three options an app changes (`wsServer`,
`iceServers`, `insights: false`) resolves against `openrooms serve`: the room and the local
participant carry the SIDs the engine gave them. Group rooms with media are in
test_browser_group_room.py.
"""

from __future__ import annotations

from typing import Any

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

CONNECT = """async ([token, wsServer]) => {
  try {
    const room = await Twilio.Video.connect(token, {
      name: 'harness', wsServer, iceServers: [], insights: false, audio: false, video: false,
    });
    const outcome = {connected: true, sid: room.sid, name: room.name,
                     participantSid: room.localParticipant.sid, identity: room.localParticipant.identity};
    room.disconnect();
    return outcome;
  } catch (error) {
    return {connected: false, code: error.code, message: error.message};
  }
}"""


def test_the_unmodified_sdk_connects_to_the_openrooms_signaling_url(sdk_page: Any, running_service: Any) -> None:
    assert sdk_page.evaluate("Twilio.Video.version") == "2.36.0"
    assert sdk_page.evaluate("Twilio.Video.isSupported") is True
    c = running_service.credentials
    token = AccessToken(c["account_sid"], c["api_key_sid"], c["api_key_secret"], identity="alice")
    token.add_grant(VideoGrant(room="harness"))
    signaling = running_service.base_url.replace("http://", "ws://") + "/signaling"

    outcome = sdk_page.evaluate(CONNECT, [token.to_jwt(), signaling])

    assert outcome["connected"] is True, outcome
    room = running_service.client().video.v1.rooms(outcome["sid"]).fetch()
    assert (outcome["name"], room.unique_name) == ("harness", "harness")
    assert outcome["participantSid"].startswith("PA") and outcome["identity"] == "alice"
