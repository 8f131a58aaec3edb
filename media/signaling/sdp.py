"""The SDP facts a twilio-video server needs, as pure functions on SDP text.

Why the server reads SDP at all (protocol doc §2.3 and §3; feasibility doc "what was hard" 2, 4):

* **Upstream track identity.** The SDK writes each publication's `id` as the track part of
  `a=msid:<stream> <id>` in its own SDP. The server learns which m-line carries which published
  track from `mid → msid track id`, on *every* client offer, because transceivers get recycled.
  Chrome writes `a=msid-semantic: WMS` with no stream list, and aiortc then ignores the msid:
  so it is parsed here, from the `a=msid:` lines (falling back to `a=ssrc:<n> msid:` lines).
  Only m-sections whose direction sends carry a live track: a `recvonly` m-line may keep a stale
  msid after an unpublish (seen in the trace).
* **Downstream track identity.** `subscribed[].id` must equal the msid track id of the m-line in
  the *server's* SDP; `with_msid` sets it if the media stack wrote its own.
* **Transceiver recycling.** The SDK reuses a `recvonly`/`inactive` m-line for a newly published
  track, including one the server added to send a subscription; the server must offer its send
  m-lines as `sendrecv`, not `sendonly` (`with_direction`).
* **ICE restarts** show up as a new `a=ice-ufrag` (`ice_ufrag`).

Direction is the effective one (RFC 3264/8866): the m-section's attribute, else the session's,
else `sendrecv`. Parsing is lenient (lines it does not know are skipped); only a broken `m=` line
raises `SdpError` (53403). Rewrites keep every other line and the line endings as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from media.signaling.errors import SdpError

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: frozenset[str] = frozenset(("sendrecv", "sendonly", "recvonly", "inactive"))


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One m-section: what it carries, which way, and under which track id."""

    index: int
    kind: str  # the m= media: "audio", "video", "application"
    port: int  # 0 means rejected
    mid: str | None
    direction: Direction
    msid_stream: str | None
    msid_track: str | None
    ice_ufrag: str | None

    @property
    def sends(self) -> bool:
        """True if the SDP's author sends media on this m-line."""
        return self.port != 0 and self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        """True if the SDP's author accepts media on this m-line."""
        return self.port != 0 and self.direction in ("sendrecv", "recvonly")


def media_sections(sdp: str) -> list[MediaSection]:
    """Every m-section of `sdp`, in order."""
    header, sections, _ = _split(sdp)
    session_direction = _direction_in(header) or "sendrecv"
    session_ufrag = _attribute(header, "ice-ufrag")
    return [_section(index, lines, session_direction, session_ufrag) for index, lines in enumerate(sections)]


def msid_tracks(sdp: str) -> dict[str, str]:
    """`mid → msid track id` for every m-section that has both (the SDK's TrackMatcher view)."""
    return {s.mid: s.msid_track for s in media_sections(sdp) if s.mid is not None and s.msid_track is not None}


def sending_tracks(sdp: str) -> dict[str, str]:
    """`mid → msid track id` of the m-sections that send: the published tracks a client offer carries."""
    return {
        s.mid: s.msid_track for s in media_sections(sdp) if s.sends and s.mid is not None and s.msid_track is not None
    }


def ice_ufrag(sdp: str) -> str | None:
    """The ICE username fragment (session level, else the first m-section's): changes on ICE restart."""
    header, sections, _ = _split(sdp)
    found = _attribute(header, "ice-ufrag")
    for lines in sections:
        if found is not None:
            break
        found = _attribute(lines, "ice-ufrag")
    return found


def bundle_mids(sdp: str) -> list[str]:
    """The mids of the `a=group:BUNDLE` line (empty if there is none)."""
    header, _, _ = _split(sdp)
    for line in header:
        if line.startswith("a=group:BUNDLE"):
            return line.split()[1:]
    return []


def with_direction(sdp: str, mid: str, direction: Direction) -> str:
    """`sdp` with the m-section `mid` set to `direction` (replacing its direction line, or adding one)."""
    if direction not in DIRECTIONS:
        raise SdpError(f"not an SDP direction: {direction!r}", code=53401)
    header, sections, eol = _split(sdp)
    lines = sections[_index_of(sections, mid)]
    _replace_or_insert(lines, _is_direction, f"a={direction}")
    return _join(header, sections, eol)


def with_msid(sdp: str, mid: str, stream_id: str, track_id: str) -> str:
    """`sdp` with the m-section `mid` announcing `a=msid:<stream_id> <track_id>` (and its ssrc lines)."""
    if not stream_id or not track_id or any(c.isspace() for c in stream_id + track_id):
        raise SdpError(f"msid ids must be non-empty tokens: {stream_id!r} {track_id!r}", code=53401)
    header, sections, eol = _split(sdp)
    lines = sections[_index_of(sections, mid)]
    msid = f"{stream_id} {track_id}"
    for position, line in enumerate(lines):
        if line.startswith("a=ssrc:") and " msid:" in line:
            lines[position] = f"{line.split(' msid:', 1)[0]} msid:{msid}"
    _replace_or_insert(lines, lambda line: line.startswith("a=msid:"), f"a=msid:{msid}")
    return _join(header, sections, eol)


# --- parsing helpers ----------------------------------------------------------------------------


def _split(sdp: str) -> tuple[list[str], list[list[str]], str]:
    """(session lines, lines of each m-section, line ending)."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    if lines and lines[-1] == "":
        lines.pop()  # the text ended with a line ending; _join writes one back
    header: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            header.append(line)
    return header, sections, eol


def _join(header: list[str], sections: list[list[str]], eol: str) -> str:
    """The inverse of `_split`; every line ends with `eol`, as RFC 8866 requires."""
    return eol.join([*header, *(line for lines in sections for line in lines)]) + eol


def _section(index: int, lines: list[str], session_direction: Direction, session_ufrag: str | None) -> MediaSection:
    parts = lines[0][2:].split()
    if len(parts) < 3 or not parts[1].split("/")[0].isdigit():
        raise SdpError(f"malformed m= line: {lines[0]!r}")
    stream, track = _msid(lines)
    return MediaSection(
        index=index,
        kind=parts[0],
        port=int(parts[1].split("/")[0]),
        mid=_attribute(lines, "mid"),
        direction=_direction_in(lines) or session_direction,
        msid_stream=stream,
        msid_track=track,
        ice_ufrag=_attribute(lines, "ice-ufrag") or session_ufrag,
    )


def _attribute(lines: list[str], name: str) -> str | None:
    """The value of the first `a=<name>:<value>` line."""
    prefix = f"a={name}:"
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def _is_direction(line: str) -> bool:
    return line.startswith("a=") and line[2:].strip() in DIRECTIONS


def _direction_in(lines: list[str]) -> Direction | None:
    for line in lines:
        if _is_direction(line):
            return cast(Direction, line[2:].strip())
    return None


def _msid(lines: list[str]) -> tuple[str | None, str | None]:
    """(stream id, track id) from `a=msid:`, else from the first `a=ssrc:<n> msid:` line."""
    value = _attribute(lines, "msid")
    if value is None:
        for line in lines:
            if line.startswith("a=ssrc:") and " msid:" in line:
                value = line.split(" msid:", 1)[1].strip()
                break
    if not value:
        return None, None
    ids = value.split()
    return ids[0], (ids[1] if len(ids) > 1 else None)


def _index_of(sections: list[list[str]], mid: str) -> int:
    for index, lines in enumerate(sections):
        if _attribute(lines, "mid") == mid:
            return index
    raise SdpError(f"no m-section with mid {mid!r}", code=53401)


def _replace_or_insert(lines: list[str], matches: Callable[[str], bool], new_line: str) -> None:
    """Put `new_line` where the first matching line was (dropping the others), else after `a=mid:`."""
    positions = [position for position, line in enumerate(lines) if matches(line)]
    for position in reversed(positions[1:]):
        del lines[position]
    if positions:
        lines[positions[0]] = new_line
        return
    after_mid = next((p + 1 for p, line in enumerate(lines) if line.startswith("a=mid:")), len(lines))
    lines.insert(after_mid, new_line)
