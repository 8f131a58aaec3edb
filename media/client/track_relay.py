"""`TrackRelay`: one local track sent on several PeerConnections (one per peer in P2P rooms).

An aiortc sender pulls frames with `track.recv()`, so two senders of one track would each get
every other frame. Every sender gets a `TrackCopy` instead: one reader per source track (started
by the first copy that asks for a frame, stopped when its last copy stops) hands each frame to
every copy. A copy's `id` is its source's, because aiortc writes the sender track's id as the
`a=msid` track id: the publication id that the server and the peers match tracks by.

    relay = TrackRelay()
    pc.addTransceiver(relay.copy(camera), direction="sendrecv")   # once per PeerConnection
    copy.stop()                                                   # unpublish / PC closed
    await relay.close()

aiortc's `MediaRelay` does the fan-out but gives its proxies ids of their own and never stops
reading a source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, TypeAlias

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

if TYPE_CHECKING:
    from av.packet import Packet
    from av.stream import Stream

logger = logging.getLogger(__name__)
Media: TypeAlias = "Frame | Packet[Stream]"
BACKLOG = 4
"""Frames a copy holds before it drops its oldest (a sender that is not running yet)."""


class TrackCopy(MediaStreamTrack):
    """The frames of a source track, for one consumer; `id` is the source's."""

    def __init__(self, source: MediaStreamTrack, reader: _Reader) -> None:
        super().__init__()
        self.kind = source.kind
        self._source_id = source.id
        self._reader: _Reader | None = reader
        self._frames: asyncio.Queue[Media | None] = asyncio.Queue(maxsize=BACKLOG)

    @property
    def id(self) -> str:
        return self._source_id

    async def recv(self) -> Media:
        if self.readyState != "live" or self._reader is None:
            raise MediaStreamError
        self._reader.start()
        frame = await self._frames.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def put(self, frame: Media | None) -> None:
        if self._frames.full():
            self._frames.get_nowait()
        self._frames.put_nowait(frame)

    def stop(self) -> None:
        super().stop()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.remove(self)


class _Reader:
    """Reads one source track while it has copies, handing every frame to each."""

    def __init__(self, source: MediaStreamTrack) -> None:
        self.source = source
        self.copies: set[TrackCopy] = set()
        self.task: asyncio.Task[None] | None = None
        self.stopped: list[asyncio.Task[None]] = []
        self.ended = False

    def start(self) -> None:
        if self.task is None and self.copies:
            self.task = asyncio.create_task(self._run(), name=f"relay of {self.source.kind} {self.source.id}")

    def remove(self, copy: TrackCopy) -> None:
        self.copies.discard(copy)
        if not self.copies and self.task is not None:
            self.task.cancel()
            self.stopped.append(self.task)
            self.task = None

    async def _run(self) -> None:
        while True:
            try:
                frame: Media | None = await self.source.recv()
            except MediaStreamError:
                frame = None
            for copy in list(self.copies):
                copy.put(frame)
            if frame is None:
                logger.debug("relay of %s %s: the source ended", self.source.kind, self.source.id)
                self.ended = True
                return


class TrackRelay:
    """The copies of the local tracks, by source track."""

    def __init__(self) -> None:
        self._readers: dict[MediaStreamTrack, _Reader] = {}

    def copy(self, source: MediaStreamTrack) -> TrackCopy:
        reader = self._readers.get(source)
        if reader is None:
            reader = self._readers[source] = _Reader(source)
        copy = TrackCopy(source, reader)
        reader.copies.add(copy)
        if reader.ended:
            copy.put(None)
        return copy

    async def close(self) -> None:
        """Stop every copy and wait for the readers to end (the source tracks stay the caller's)."""
        for reader in self._readers.values():
            for copy in list(reader.copies):
                copy.stop()
        for reader in self._readers.values():
            for task in reader.stopped:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._readers.clear()
