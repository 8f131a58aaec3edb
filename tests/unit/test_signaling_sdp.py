"""SDP facts on the real SDPs of the traces: Chrome 156's offers and answers, aiortc's answers and
offers from the group-room prototype, and browser-to-browser SDP relayed in peer-to-peer rooms.

What matters to a client: the server finds each published track on the m-line the SDK put its
publication id on (`a=msid`), and the server's own SDP names each subscribed track with the id
the SDK will match in `subscribed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from media.signaling.errors import SdpError
from media.signaling.sdp import (
    bundle_mids,
    ice_ufrag,
    media_sections,
    msid_tracks,
    sending_tracks,
    with_direction,
    with_msid,
)

DATA = Path(__file__).resolve().parents[1] / "data"
GROUP = "twilio-signaling-trace.jsonl"
P2P = "twilio-signaling-p2p-trace.jsonl"


def records(trace: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / trace).read_text().splitlines()]


def body_of(record: dict[str, Any]) -> dict[str, Any]:
    frame = record["msg"]
    body: dict[str, Any] = frame.get("body", frame)
    return body


def client_descriptions(traces: tuple[str, ...] = (GROUP, P2P)) -> list[Any]:
    """(sdp, participant tracks) of every description with SDP a client sent, as pytest params."""
    found = []
    for trace in traces:
        for line, record in enumerate(records(trace)):
            if record["dir"] != "in" or "type" not in record["msg"]:
                continue
            body = body_of(record)
            for pc in body.get("peer_connections") or []:
                description = pc.get("description") or {}
                if "sdp" in description:
                    label = f"{trace.split('.')[0]}:{line}:{description['type']}{description['revision']}"
                    found.append(pytest.param(description["sdp"], body["participant"]["tracks"], id=label))
    return found


def group_sdp(line: int, index: int = 0) -> str:
    description = body_of(records(GROUP)[line])["peer_connections"][index]["description"]
    sdp: str = description["sdp"]
    return sdp


def test_the_traces_hold_client_offers_and_answers() -> None:
    assert len(client_descriptions()) >= 40


@pytest.mark.parametrize(("sdp", "tracks"), client_descriptions())
def test_a_client_sdp_sends_only_published_tracks_under_their_publication_ids_on_m_lines_of_their_kind(
    sdp: str, tracks: list[dict[str, Any]]
) -> None:
    kinds = {section.mid: section.kind for section in media_sections(sdp)}
    published = {(t["kind"], t["id"]) for t in tracks if t["kind"] != "data"}

    assert {(kinds[mid], track_id) for mid, track_id in sending_tracks(sdp).items()} <= published


@pytest.mark.parametrize(("sdp", "tracks"), client_descriptions((GROUP,)))
def test_in_a_group_room_every_client_sdp_sends_all_its_published_media_tracks(
    sdp: str, tracks: list[dict[str, Any]]
) -> None:
    # In P2P an answer on a new link is recvonly at first: tracks come in a second round (p2p doc §3.2).
    assert sorted(sending_tracks(sdp).values()) == sorted(t["id"] for t in tracks if t["kind"] != "data")


def test_the_connect_offer_maps_mid_0_to_the_audio_track_and_mid_1_to_the_video_track() -> None:
    offer = group_sdp(0)

    assert "a=msid-semantic: WMS\r\n" in offer  # Chrome's bare form, which aiortc ignores
    assert msid_tracks(offer) == {
        "0": "e3e85ee9-69ae-4ee2-bcdf-ef82ae4921eb",
        "1": "00532e5e-8e43-44ac-804a-f151915b7bed",
    }
    assert [(s.mid, s.kind, s.direction, s.msid_stream) for s in media_sections(offer)] == [
        ("0", "audio", "sendrecv", "-"),
        ("1", "video", "sendrecv", "-"),
    ]
    assert bundle_mids(offer) == ["0", "1"]


def test_the_offer_ufrag_is_the_one_its_trickled_candidates_carry() -> None:
    trickle = body_of(records(GROUP)[2])["peer_connections"][0]["ice"]

    assert ice_ufrag(group_sdp(0)) == trickle["ufrag"] == "ecnH"


def test_the_servers_answer_receives_on_every_m_line_the_client_sends_on() -> None:
    answer = group_sdp(1)

    assert [(s.mid, s.direction, s.receives, s.sends) for s in media_sections(answer)] == [
        ("0", "recvonly", True, False),
        ("1", "recvonly", True, False),
    ]
    assert ice_ufrag(answer) == "0nUz"
    assert sending_tracks(answer) == {}


@pytest.mark.parametrize("line", [7, 8, 51, 54, 132, 133, 143, 148])
def test_a_server_offer_names_every_subscribed_track_on_a_sendrecv_m_line(line: int) -> None:
    body = body_of(records(GROUP)[line])
    offer = group_sdp(line)
    by_track = {s.msid_track: s for s in media_sections(offer)}

    for subscription in body["subscribed"]["tracks"]:
        section = by_track[subscription["id"]]
        assert section.direction == "sendrecv"  # so the SDK can recycle it (protocol doc §3)
        assert section.sends


def test_a_track_published_later_arrives_on_a_recycled_server_m_line_and_leaves_a_stale_msid() -> None:
    server_offer, publish_offer, unpublish_offer = group_sdp(132), group_sdp(141), group_sdp(149)
    server_mid_3 = media_sections(server_offer)[3]
    assert (server_mid_3.mid, server_mid_3.kind, server_mid_3.direction) == ("3", "video", "sendrecv")

    assert sending_tracks(publish_offer)["3"] == "9b873faf-8c85-43a0-8757-33369db5c7e9"
    assert "3" not in sending_tracks(unpublish_offer)
    assert media_sections(unpublish_offer)[3].direction == "recvonly"
    assert "3" in msid_tracks(unpublish_offer)  # the stale id only a direction check filters out


def test_with_direction_changes_one_line_of_one_m_section_and_keeps_crlf() -> None:
    answer = group_sdp(1)

    changed = with_direction(answer, "1", "sendrecv")

    assert [s.direction for s in media_sections(changed)] == ["recvonly", "sendrecv"]
    before, after = answer.split("\r\n"), changed.split("\r\n")
    assert len(before) == len(after)
    assert [(b, a) for b, a in zip(before, after, strict=True) if b != a] == [("a=recvonly", "a=sendrecv")]


def test_with_direction_adds_the_attribute_to_an_m_section_without_one() -> None:
    offer = group_sdp(39)  # the server offer that added SCTP: no direction on m=application
    application = media_sections(offer)[2]
    assert (application.kind, application.direction) == ("application", "sendrecv")

    changed = with_direction(offer, "2", "inactive")

    assert media_sections(changed)[2].direction == "inactive"
    lines = changed.split("\r\n")
    assert lines[lines.index("a=mid:2") + 1] == "a=inactive"


def test_with_msid_sets_the_track_id_a_subscriber_matches_in_subscribed() -> None:
    offer = group_sdp(7)

    changed = with_msid(offer, "2", "stream-bob", "bob-audio")

    assert msid_tracks(changed)["2"] == "bob-audio"
    assert msid_tracks(changed)["3"] == msid_tracks(offer)["3"]
    section = changed.split("m=")[3]
    assert section.count("a=msid:") == 1 and "a=msid:stream-bob bob-audio\r\n" in section


def test_with_msid_also_rewrites_the_ssrc_msid_lines() -> None:
    offer = group_sdp(0)
    assert "a=ssrc:152794674 msid:- e3e85ee9-69ae-4ee2-bcdf-ef82ae4921eb" in offer

    changed = with_msid(offer, "0", "s", "renamed")

    assert "a=ssrc:152794674 msid:s renamed" in changed
    assert "e3e85ee9" not in changed
    assert msid_tracks(changed) == {"0": "renamed", "1": "00532e5e-8e43-44ac-804a-f151915b7bed"}


SYNTHETIC = "\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=sendonly",
        "a=ice-ufrag:sess",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:a",
        "a=ssrc:1 cname:x",
        "a=ssrc:1 msid:stream track-from-ssrc",
        "m=video 0 UDP/TLS/RTP/SAVPF 96",
        "a=mid:v",
        "a=inactive",
        "",
    ]
)


def test_session_level_direction_and_ufrag_apply_to_m_sections_without_their_own() -> None:
    audio, video = media_sections(SYNTHETIC)

    assert (audio.direction, audio.ice_ufrag, audio.sends) == ("sendonly", "sess", True)
    assert (video.port, video.direction, video.sends, video.receives) == (0, "inactive", False, False)
    assert ice_ufrag(SYNTHETIC) == "sess"


def test_an_msid_only_in_ssrc_lines_is_still_found() -> None:
    assert msid_tracks(SYNTHETIC) == {"a": "track-from-ssrc"}
    assert with_direction(SYNTHETIC, "v", "recvonly").endswith("a=mid:v\na=recvonly\n")


def test_rewriting_an_unknown_mid_or_reading_a_broken_m_line_raises_sdp_errors() -> None:
    with pytest.raises(SdpError) as unknown:
        with_direction(SYNTHETIC, "nope", "sendrecv")
    with pytest.raises(SdpError) as broken:
        media_sections("v=0\r\nm=audio\r\n")

    assert unknown.value.code == 53401
    assert broken.value.code == 53403
