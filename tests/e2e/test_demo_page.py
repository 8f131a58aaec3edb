"""The demo page at `/`: two browsers join a room by filling a form, see and hear each other, leave.

`openrooms serve --dev true --sdk-dir <npm's twilio-video dist>` serves the page, the unmodified
SDK bundle at `/sdk/twilio-video.min.js` and `POST /dev/token`; each participant is its own
Chromium context with a fake camera and microphone. Without `--dev` the token endpoint does not
exist and the page says where tokens come from (and, with no SDK installed, how to install it).
Waits are `wait_for_function` on what the page shows, never fixed sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

SDK_DIR = Path(__file__).resolve().parents[1] / "browser" / "node_modules" / "twilio-video" / "dist"
MEDIA_ENV = {"OPENROOMS_MEDIA_ICE_HOSTS": "127.0.0.1"}
TIMEOUT_MS = 30_000

REMOTE_FRAMES = """(identity) => {
  const video = document.querySelector(`.tile.remote[data-identity="${identity}"] video`);
  return video ? video.getVideoPlaybackQuality().totalVideoFrames : -1;
}"""


def _stop(service: Any) -> None:
    assert service.process.stop() == 0, service.process.stderr()
    assert "Traceback" not in service.process.stderr(), service.process.stderr()


@pytest.fixture(scope="module")
def dev_service(start: Callable[..., Any], sdk_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`--dev true`, the SDK from tests/browser (installed by `sdk_origin` when missing)."""
    assert (SDK_DIR / "twilio-video.min.js").is_file()
    state = tmp_path_factory.mktemp("demo-dev") / "state"
    service = start(state, "--dev", "true", "--sdk-dir", str(SDK_DIR), env=MEDIA_ENV)
    yield service
    _stop(service)


@pytest.fixture(scope="module")
def plain_service(start: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Defaults: no `--dev`, the SDK directory in the state dir (nothing installed there)."""
    service = start(tmp_path_factory.mktemp("demo-plain") / "state", env=MEDIA_ENV)
    yield service
    _stop(service)


@pytest.fixture
def browsers(chromium: Any) -> Iterator[list[Any]]:
    """Two pages, each in its own browser context (own fake camera and microphone)."""
    contexts = [chromium.new_context() for _ in range(2)]
    yield [context.new_page() for context in contexts]
    for context in contexts:
        context.close()


def join(page: Any, base_url: str, identity: str, room: str) -> None:
    page.goto(base_url + "/")
    page.fill("#identity", identity)
    page.fill("#room", room)
    page.click("#join-button")
    page.wait_for_function(
        "(text) => document.getElementById('status').textContent.startsWith(text)",
        arg=f"In room {room} ",
        timeout=TIMEOUT_MS,
    )


def wait_remote_video_plays(page: Any, identity: str) -> None:
    """`identity`'s tile holds a <video> that decodes frames, and keeps decoding."""
    grown = f"([identity, n]) => ({REMOTE_FRAMES})(identity) > n"
    page.wait_for_function(grown, arg=[identity, 10], timeout=TIMEOUT_MS)
    before = page.evaluate(REMOTE_FRAMES, identity)
    page.wait_for_function(grown, arg=[identity, before + 10], timeout=TIMEOUT_MS)


def status_of(page: Any) -> str:
    text: str = page.text_content("#status")
    return text


def test_two_browsers_join_from_the_demo_page_see_each_other_and_leave(browsers: list[Any], dev_service: Any) -> None:
    alice, bob = browsers

    join(alice, dev_service.base_url, "alice", "demo-room")
    join(bob, dev_service.base_url, "bob", "demo-room")

    wait_remote_video_plays(alice, "bob")
    wait_remote_video_plays(bob, "alice")
    assert alice.is_visible("#local video") and bob.is_visible("#local video")
    rooms = dev_service.client().video.v1.rooms.list(unique_name="demo-room", status="in-progress")
    connected = dev_service.client().video.v1.rooms(rooms[0].sid).participants.list(status="connected")
    assert sorted(p.identity for p in connected) == ["alice", "bob"]

    alice.click("#mute")
    assert alice.text_content("#mute") == "Unmute"
    assert alice.evaluate("[...room.localParticipant.audioTracks.values()].map((p) => p.track.isEnabled)") == [False]
    alice.click("#mute")
    assert alice.evaluate("[...room.localParticipant.audioTracks.values()].map((p) => p.track.isEnabled)") == [True]

    bob.click("#leave")
    bob.wait_for_function("document.getElementById('status').textContent === 'Left the room.'", timeout=TIMEOUT_MS)
    assert bob.query_selector_all(".tile.remote") == [] and not bob.is_visible("#local")
    alice.wait_for_function("!document.querySelector('.tile.remote[data-identity=\"bob\"]')", timeout=TIMEOUT_MS)
    assert status_of(alice) == "bob left"

    alice.click("#leave")
    alice.wait_for_function("document.getElementById('status').textContent === 'Left the room.'", timeout=TIMEOUT_MS)
    left = dev_service.client().video.v1.rooms(rooms[0].sid).participants.list(status="connected")
    assert left == []


def test_the_dev_token_endpoint_mints_an_hour_long_token_for_the_configured_key(dev_service: Any) -> None:
    c = dev_service.credentials

    as_json = requests.post(dev_service.base_url + "/dev/token", json={"identity": "carol", "room": "r1"}, timeout=10)
    as_form = requests.post(dev_service.base_url + "/dev/token", data={"identity": "dave"}, timeout=10)
    missing = requests.post(dev_service.base_url + "/dev/token", json={"room": "r1"}, timeout=10)

    assert as_json.status_code == 200 and as_form.status_code == 200
    claims = jwt.decode(as_json.json()["token"], c["api_key_secret"], algorithms=["HS256"])
    assert (claims["iss"], claims["sub"]) == (c["api_key_sid"], c["account_sid"])
    assert claims["grants"] == {"identity": "carol", "video": {"room": "r1"}}
    assert claims["exp"] - claims["nbf"] == 3600
    form_claims = jwt.decode(as_form.json()["token"], c["api_key_secret"], algorithms=["HS256"])
    assert form_claims["grants"] == {"identity": "dave", "video": {}}
    assert missing.status_code == 400 and missing.json()["code"] == 20001
    assert "--dev is on" in dev_service.process.stderr()


def test_without_dev_there_is_no_token_endpoint_and_the_page_says_where_tokens_come_from(
    browsers: list[Any], plain_service: Any
) -> None:
    response = requests.post(plain_service.base_url + "/dev/token", json={"identity": "eve"}, timeout=10)

    assert response.status_code == 404
    assert response.json() == {
        "code": 20404,
        "message": "The requested resource /dev/token was not found",
        "more_info": "https://www.twilio.com/docs/errors/20404",
        "status": 404,
    }
    assert requests.get(plain_service.base_url + "/sdk/twilio-video.min.js", timeout=10).status_code == 404
    page = browsers[0]
    page.goto(plain_service.base_url + "/")
    assert "Tokens come from your app's own server" in page.text_content("#dev-off")
    install = f"npm install twilio-video@2.36.0 --prefix {plain_service.state_dir.resolve() / 'sdk'}"
    assert install in page.text_content("#sdk-missing")
    page.fill("#identity", "eve")
    page.click("#join-button")
    assert "SDK did not load" in status_of(page)
    assert "--dev is on" not in plain_service.process.stderr()
