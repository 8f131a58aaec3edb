"""The unmodified twilio-video SDK in Debian's Chromium, pointed at openrooms.

These are the harness the signaling tests build on: the SDK from npm loads, and its
`connect()` goes to the `wsServer` openrooms gives it. Signaling is not built yet (issue 5), so
today the connect is refused with the SDK's signaling error; when `/signaling` lands, this test
turns into the first real connect.
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
    return {connected: true, sid: room.sid};
  } catch (error) {
    return {connected: false, code: error.code, message: error.message};
  }
}"""


def test_the_unmodified_sdk_loads_and_its_connect_reaches_the_openrooms_signaling_url(
    sdk_page: Any, running_service: Any
) -> None:
    assert sdk_page.evaluate("Twilio.Video.version") == "2.36.0"
    assert sdk_page.evaluate("Twilio.Video.isSupported") is True
    c = running_service.credentials
    token = AccessToken(c["account_sid"], c["api_key_sid"], c["api_key_secret"], identity="alice")
    token.add_grant(VideoGrant(room="harness"))
    signaling = running_service.base_url.replace("http://", "ws://") + "/signaling"
    outcome = sdk_page.evaluate(CONNECT, [token.to_jwt(), signaling])
    assert outcome["connected"] is False
    assert outcome["code"] == 53000, outcome  # "Signaling connection error": /signaling is not built yet
