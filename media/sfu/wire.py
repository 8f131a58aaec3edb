"""The forwarding step of one outbound RTP stream, in C: rewrite, write, protect, send, remember.

A packet from a publisher is forwarded once per subscriber, so this step is most of the SFU's
cost per forwarded packet: `media.sfu._wire.Wire` (_wire.c, built at install by gcc with the
Python headers) does it in one call. Its header comment says what it does and why; this module
connects it to an aiortc sender:

* `supports`: whether the sender's extension ids fit the one-byte header form (ids up to 14, a
  mid of 1 to 16 bytes), which aiortc would also pick; the SFU does not forward on a stream that
  needs the two-byte form.
* `connect`: gives a `Wire` the sender's SSRC, mid element and extension ids, the DTLS
  transport's outbound SRTP session (libsrtp's context and `srtp_protect`, as addresses from
  pylibsrtp's cffi binding) and the aiortc counters it keeps (the names come from media.sfu.hooks).
"""

from __future__ import annotations

from typing import Any

from pylibsrtp import SRTP_MAX_TRAILER_LEN, Session
from pylibsrtp._binding import ffi, lib

from media.sfu._wire import Wire

__all__ = ["Wire", "connect", "supports"]

_MAX_ONE_BYTE_ID = 14
_SRTP_PROTECT = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))


def supports(mid: str | None, mid_id: int, abs_send_time_id: int, audio_level_id: int) -> bool:
    """True when the one-byte extension header form fits these ids (what aiortc would choose)."""
    ids_fit = all(0 <= i <= _MAX_ONE_BYTE_ID for i in (mid_id, abs_send_time_id, audio_level_id))
    mid_fits = mid is None or not mid_id or 1 <= len(mid.encode("utf8")) <= 16
    return ids_fit and mid_fits


def connect(
    wire: Wire,
    ssrc: int,
    mid: str | None,
    extension_ids: tuple[int, int, int],
    session: Session,
    counters: tuple[dict[str, Any], str, str, dict[str, Any], str, str, str, str],
) -> None:
    """Make `wire` write for `ssrc`, `mid` and the (mid, abs-send-time, audio level) extension ids
    (0 = not negotiated), protect with `session` and keep `counters` (see _wire.c)."""
    mid_id = extension_ids[0]
    if not supports(mid, *extension_ids):
        raise ValueError("these extensions need the two-byte header form")
    mid_bytes = mid.encode("utf8") if mid is not None and mid_id else b""
    mid_element = bytes([(mid_id << 4) | (len(mid_bytes) - 1)]) + mid_bytes if mid_bytes else b""
    wire.connect(
        ssrc,
        mid_element,
        extension_ids[1],
        extension_ids[2],
        session,
        int(ffi.cast("uintptr_t", session._srtp[0])),
        _SRTP_PROTECT,
        len(session._cdata) - SRTP_MAX_TRAILER_LEN,
        counters,
    )
