"""`IceBox`: a peer's trickled ICE candidates, kept by ufrag until they can be applied (the SDK's icebox.js).

Each `ice` entry carries the full candidate list of one ufrag so far, one revision higher each time
(protocol doc §3.6). A list is replaced only by a higher revision, and `take(ufrag)` hands out only
the candidates not taken before. Candidates of a ufrag that the remote description does not have
yet wait for it, so their order against the descriptions does not matter.
"""

from __future__ import annotations

from media.signaling.messages import IceCandidate, IceState


class IceBox:
    def __init__(self) -> None:
        self._lists: dict[str, IceState] = {}
        self._taken: dict[str, int] = {}

    def update(self, ice: IceState) -> None:
        known = self._lists.get(ice.ufrag)
        if known is None or ice.revision > known.revision:
            self._lists[ice.ufrag] = ice

    def take(self, ufrag: str | None) -> list[IceCandidate]:
        """The candidates of `ufrag` (the remote description's) not taken yet."""
        ice = self._lists.get(ufrag) if ufrag is not None else None
        if ice is None:
            return []
        taken = self._taken.get(ice.ufrag, 0)
        self._taken[ice.ufrag] = max(taken, len(ice.candidates))
        return ice.candidates[taken:]
