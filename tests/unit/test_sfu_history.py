"""The retransmission history of one outbound stream (`Wire.history`, media/sfu/_wire.c): the
plaintext of the last `history_size` packets the wire forwarded, by outbound sequence number."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pylibsrtp
import pytest

from media.sfu.config import SfuConfig
from media.sfu.wire import Wire
from media.sfu.wire import connect as wire_connect


@pytest.fixture
def aimed() -> Iterator[tuple[socket.socket, tuple[str, int]]]:
    """A sending socket and the address of a receiving one, on loopback."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    yield sender, receiver.getsockname()
    sender.close()
    receiver.close()


def sending_wire(history_size: int, first_sequence_number: int, aimed: tuple[socket.socket, tuple[str, int]]) -> Wire:
    session = pylibsrtp.Session(pylibsrtp.Policy(key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    counters = ({"b": 0, "p": 0}, "b", "p", {"n": 0, "t": 0, "o": 0, "c": 0}, "n", "t", "o", "c")
    wire = Wire(history_size, first_sequence_number, 0)
    wire_connect(wire, 7, None, (0, 0, 0), session, counters)
    wire.aim(aimed[0], *aimed[1])
    return wire


def forward(wire: Wire, seq: int, payload: bytes) -> None:
    assert wire.forward(96, 0, seq, 0, payload, 0, None, 0.0, 90000)


def test_a_sent_packet_is_found_by_its_sequence_number_until_size_newer_ones_replace_it(aimed):
    wire = sending_wire(4, 10, aimed)
    for i in range(4):
        forward(wire, 500 + i, b"p%d" % i)
    assert [wire.history(seq)[12:] for seq in range(10, 14)] == [b"p0", b"p1", b"p2", b"p3"]  # type: ignore[index]
    forward(wire, 504, b"p4")
    assert wire.history(10) is None and wire.history(14)[12:] == b"p4"  # type: ignore[index]


def test_a_number_never_sent_is_not_answered_with_the_packet_in_its_slot(aimed):
    wire = sending_wire(4, 65535, aimed)
    forward(wire, 9, b"last")
    forward(wire, 10, b"wrapped")
    assert wire.history(65535)[12:] == b"last" and wire.history(0)[12:] == b"wrapped"  # type: ignore[index]
    assert wire.history(3) is None and wire.history(4) is None  # 4 and 0 share a slot
    assert wire.history(65536) is None and wire.history(-1) is None
    assert Wire(8, 0, 0).history(0) is None  # nothing sent


def test_the_size_must_be_positive_and_the_default_longer_than_aiortcs():
    from aiortc.rtp import RTP_HISTORY_SIZE

    assert SfuConfig().history_size > RTP_HISTORY_SIZE
    for size in (0, -1, 65537):
        with pytest.raises(ValueError):
            Wire(size, 0, 0)
