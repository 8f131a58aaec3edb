"""A peer-to-peer link's relay rules: glare drops the later of two crossing offers, duplicates go once."""

from __future__ import annotations

from domain.ids import ParticipantSid
from media.session.mesh_topology import Link
from media.signaling.messages import PeerConnectionId, SessionDescription

A, B = ParticipantSid("PAa"), ParticipantSid("PAb")


def offer(revision: int) -> SessionDescription:
    return SessionDescription(type="offer", revision=revision, sdp="v=0\r\n")


def answer(revision: int) -> SessionDescription:
    return SessionDescription(type="answer", revision=revision, sdp="v=0\r\n")


def link() -> Link:
    return Link(PeerConnectionId("pc"), (A, B))


def test_an_offer_from_the_other_end_while_one_is_outstanding_is_dropped_until_the_answer() -> None:
    shared = link()
    assert shared.admit(B, offer(4))
    assert not shared.admit(A, offer(4)), "glare: A rolls back and answers B's offer"
    assert shared.admit(A, answer(4))
    assert shared.admit(A, offer(5)), "A's own change goes through once B's offer is answered"
    assert shared.admit(B, answer(5))


def test_the_same_description_is_relayed_once() -> None:
    shared = link()
    assert shared.admit(A, offer(2))
    assert not shared.admit(A, offer(2)), "a sync body or merged update repeats it"
    assert shared.admit(B, answer(2))
    assert not shared.admit(B, answer(2))


def test_an_end_may_offer_again_over_its_own_outstanding_offer() -> None:
    shared = link()
    assert shared.admit(A, offer(2))
    assert shared.admit(A, offer(3))
    assert not shared.admit(B, offer(3))


def test_descriptions_without_a_revision_or_of_other_types_are_not_relayed() -> None:
    shared = link()
    assert not shared.admit(A, SessionDescription(type="offer", sdp="v=0\r\n"))
    assert not shared.admit(A, SessionDescription(type="create-offer", revision=1))
    assert shared.other(A) == B and shared.other(B) == A
