"""RoomView: what clients are told about participants, rebuilt from the engine's room events."""

from __future__ import annotations

from typing import Any

from media.session.room_view import RoomView


def event(name: str, /, **fields: Any) -> dict[str, Any]:
    return {"event": name, "participant_sid": "PA1", **fields}


def test_every_change_to_a_participant_raises_its_revision_and_repeats_change_nothing() -> None:
    view = RoomView()
    joined = view.apply(event("participant_connected", identity="alice"))
    assert joined is not None and joined.revision == 1
    published = event("track_published", track_sid="MT1", name="cam", kind="video", enabled=True)

    assert view.apply(published) is joined and joined.revision == 2
    assert view.apply(published) is None  # replayed: no new revision
    assert view.apply(event("track_disabled", track_sid="MT1")) is joined and joined.revision == 3
    assert view.connected()[0].tracks[0].enabled is False
    assert view.apply(event("participant_connected", identity="alice")) is None

    assert view.apply(event("participant_disconnected", reason="left")) is joined
    state = joined.state()
    assert (state.state, state.revision) == ("disconnected", 4)
    assert view.connected() == []
    assert view.apply(event("track_unpublished", track_sid="MT1", name="cam", kind="video")) is None


def test_the_local_participant_is_left_out_of_its_own_participants_list() -> None:
    view = RoomView()
    view.apply(event("participant_connected", identity="alice"))
    view.apply({"event": "participant_connected", "participant_sid": "PA2", "identity": "bob"})

    assert [p.identity for p in view.connected(exclude="PA1")] == ["bob"]  # type: ignore[arg-type]
