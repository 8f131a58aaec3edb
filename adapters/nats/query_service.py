"""`rooms.qry.<query>`: status queries over NATS request/reply, answered from the read model.

Bodies are JSON objects (msgspec-validated, unknown fields refused); lists page with
`page_size` (1..1000, default 50) and the `next_page_token` of the previous reply. Every query
reads its own writes: the read model is brought up to the log first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Protocol

import msgspec
from nats.aio.client import Client

from adapters import twilio_shapes as shapes
from adapters.nats import envelope
from adapters.nats.responder import Responder
from adapters.store.queries import Page, PageTokenError, Queries
from domain.access import Grant
from domain.errors import AccessTokenGrantsInvalidError, DomainError

logger = logging.getLogger(__name__)
SUBJECT = "rooms.qry.*"
QUEUE = "openrooms-query"
PageSize = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class _Query(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _Paged(_Query):
    page_size: PageSize = 50
    page_token: str | None = None
    date_created_after: datetime | None = None
    date_created_before: datetime | None = None


class GetRoom(_Query, kw_only=True):
    room: str


class ListRooms(_Paged, kw_only=True):
    status: str | None = "in-progress"
    unique_name: str | None = None


class GetParticipant(_Query, kw_only=True):
    room: str
    participant: str


class ListParticipants(_Paged, kw_only=True):
    room: str
    status: str | None = None
    identity: str | None = None


class ParticipantTracks(_Query, kw_only=True):
    room: str
    participant: str
    page_size: PageSize = 50
    page_token: str | None = None


class GetTrack(_Query, kw_only=True):
    room: str
    participant: str
    track: str


class GetRecordingRules(_Query, kw_only=True):
    room: str


class GetRecording(_Query, kw_only=True):
    recording: str
    room: str | None = None
    """When given, the recording must belong to this room (SID or in-progress name); room-scoped shape."""


class VerifyToken(_Query, kw_only=True):
    token: str
    room: str | None = None
    """The room the client is connecting to (SID or name): the token's room grant must allow it."""


class ListRecordings(_Paged, kw_only=True):
    room: str | None = None
    status: str | None = None
    source_sid: str | None = None
    grouping_sid: list[str] = []
    media_type: str | None = None


class TokenCheck(Protocol):
    def verify(self, token: str) -> Grant: ...


def _micros(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1_000_000)


class NotFound(Exception):
    pass


def _found(row: dict[str, Any] | None, missing: str) -> dict[str, Any]:
    """The row, or a 20404 reply saying what is `missing`."""
    if row is None:
        raise NotFound(missing)
    return row


class QueryService(Responder):
    subject = SUBJECT
    queue = QUEUE

    def __init__(
        self,
        nc: Client,
        queries: Queries,
        base_url: str,
        *,
        ready: Callable[[], Awaitable[None]] | None = None,
        tokens: TokenCheck | None = None,
        inline: bool = False,
    ) -> None:
        """`inline`: answer single-resource queries on the event loop (a local SQLite lookup takes
        tens of microseconds, less than the hop to a worker thread); lists always go to a thread."""
        super().__init__(nc)
        self.inline = inline
        self.ready = ready
        self.q = queries
        self.base = base_url.rstrip("/")
        self.tokens = tokens
        self._handlers: dict[str, tuple[type[_Query], Callable[[Any], Any]]] = {
            "get_room": (GetRoom, self.get_room),
            "list_rooms": (ListRooms, self.list_rooms),
            "get_participant": (GetParticipant, self.get_participant),
            "list_participants": (ListParticipants, self.list_participants),
            "list_published_tracks": (ParticipantTracks, self.list_published_tracks),
            "get_published_track": (GetTrack, self.get_published_track),
            "list_subscribed_tracks": (ParticipantTracks, self.list_subscribed_tracks),
            "get_subscribed_track": (GetTrack, self.get_subscribed_track),
            "get_subscribe_rules": (GetParticipant, self.get_subscribe_rules),
            "get_recording_rules": (GetRecordingRules, self.get_recording_rules),
            "get_recording": (GetRecording, self.get_recording),
            "list_recordings": (ListRecordings, self.list_recordings),
            "verify_token": (VerifyToken, self.verify_token),
        }

    async def answer(self, name: str, data: bytes) -> bytes:
        """Answer the query `name` with the JSON body `data`; the reply envelope (never raises)."""
        try:
            return await self._answer(name, data)
        except Exception:
            logger.exception("query %s failed", name)
            return envelope.error(envelope.INTERNAL, "internal error", 500)

    async def _answer(self, name: str, data: bytes) -> bytes:
        entry = self._handlers.get(name)
        if entry is None:
            known = ", ".join(sorted(self._handlers))
            return envelope.error(envelope.NOT_FOUND, f"unknown query {name!r}; known: {known}", 404)
        kind, handler = entry
        try:
            params = msgspec.json.decode(data or b"{}", type=kind)
        except msgspec.DecodeError as exc:
            return envelope.error(envelope.MALFORMED, f"invalid {name}: {exc}")
        if self.ready is not None:
            await self.ready()
        try:
            if self.inline and not name.startswith("list_"):
                return envelope.ok(handler(params))
            return envelope.ok(await asyncio.to_thread(handler, params))
        except NotFound as exc:
            return envelope.error(envelope.NOT_FOUND, str(exc), 404)
        except PageTokenError as exc:
            return envelope.error(envelope.MALFORMED, str(exc))
        except DomainError as exc:
            return envelope.error(exc.code, str(exc), exc.status)

    # --- the queries ---------------------------------------------------------------------

    def _room(self, room: str) -> dict[str, Any]:
        return _found(self.q.room(room), f"room {room} not found")

    def _room_sid(self, room: str) -> str:
        return str(self._room(room)["sid"])

    def _participant(self, room: str, participant: str) -> dict[str, Any]:
        room_sid = self._room_sid(room)
        return _found(
            self.q.participant(room_sid, participant), f"participant {participant} not found in room {room_sid}"
        )

    def _participant_sid(self, room: str, participant: str) -> tuple[str, str]:
        row = self._participant(room, participant)
        return str(row["room_sid"]), str(row["sid"])

    @staticmethod
    def _paged(key: str, page: Page, shape: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        return {key: [shape(r) for r in page.rows], "next_page_token": page.next_token}

    def get_room(self, p: GetRoom) -> dict[str, Any]:
        return shapes.room_json(self._room(p.room), self.base)

    def list_rooms(self, p: ListRooms) -> dict[str, Any]:
        page = self.q.rooms(
            status=p.status, unique_name=p.unique_name, created_after=_micros(p.date_created_after),
            created_before=_micros(p.date_created_before), page_size=p.page_size, page_token=p.page_token,
        )  # fmt: skip
        return self._paged("rooms", page, lambda r: shapes.room_json(r, self.base))

    def get_participant(self, p: GetParticipant) -> dict[str, Any]:
        return shapes.participant_json(self._participant(p.room, p.participant), self.base)

    def list_participants(self, p: ListParticipants) -> dict[str, Any]:
        room = self._room(p.room)
        status = p.status or ("connected" if room["status"] == "in-progress" else "disconnected")
        page = self.q.participants(
            str(room["sid"]), status=status, identity=p.identity, created_after=_micros(p.date_created_after),
            created_before=_micros(p.date_created_before), page_size=p.page_size, page_token=p.page_token,
        )  # fmt: skip
        return self._paged("participants", page, lambda r: shapes.participant_json(r, self.base))

    def list_published_tracks(self, p: ParticipantTracks) -> dict[str, Any]:
        _, participant = self._participant_sid(p.room, p.participant)
        page = self.q.published_tracks(participant, page_size=p.page_size, page_token=p.page_token)
        return self._paged("published_tracks", page, lambda r: shapes.published_track_json(r, self.base))

    def get_published_track(self, p: GetTrack) -> dict[str, Any]:
        _, participant = self._participant_sid(p.room, p.participant)
        row = _found(self.q.published_track(participant, p.track), f"published track {p.track} not found")
        return shapes.published_track_json(row, self.base)

    def list_subscribed_tracks(self, p: ParticipantTracks) -> dict[str, Any]:
        _, participant = self._participant_sid(p.room, p.participant)
        page = self.q.subscribed_tracks(participant, page_size=p.page_size, page_token=p.page_token)
        return self._paged("subscribed_tracks", page, lambda r: shapes.subscribed_track_json(r, self.base))

    def get_subscribed_track(self, p: GetTrack) -> dict[str, Any]:
        _, participant = self._participant_sid(p.room, p.participant)
        row = _found(self.q.subscribed_track(participant, p.track), f"subscribed track {p.track} not found")
        return shapes.subscribed_track_json(row, self.base)

    def get_subscribe_rules(self, p: GetParticipant) -> dict[str, Any]:
        _, participant = self._participant_sid(p.room, p.participant)
        row = _found(self.q.subscribe_rules(participant), f"subscribe rules of {p.participant} not found")
        return shapes.subscribe_rules_json(row)

    def get_recording_rules(self, p: GetRecordingRules) -> dict[str, Any]:
        row = _found(
            self.q.recording_rules(self._room_sid(p.room)), f"room {p.room} has no recording rules (not a group room)"
        )
        return shapes.recording_rules_json(row)

    def get_recording(self, p: GetRecording) -> dict[str, Any]:
        row = _found(self.q.recording(p.recording), f"recording {p.recording} not found")
        if p.room is None:
            return shapes.recording_json(row, self.base)
        if row["room_sid"] != self._room_sid(p.room):
            raise NotFound(f"recording {p.recording} not found in room {p.room}")
        return shapes.recording_json(row, self.base, room_scoped=True)

    def verify_token(self, p: VerifyToken) -> dict[str, Any]:
        """The grant of a valid access token (20101-20107 otherwise), for signaling front ends that
        hold no key secrets. With `room`, the token's room grant must name that room (20106)."""
        if self.tokens is None:
            raise NotFound("this process does not verify tokens")
        grant = self.tokens.verify(p.token)
        if p.room is not None:
            row = self.q.room(p.room)
            sid, name = (str(row["sid"]), str(row["unique_name"])) if row is not None else (p.room, p.room)
            if not grant.allows_room(sid, name):
                raise AccessTokenGrantsInvalidError(f"the video grant is for room {grant.room!r}, not {p.room!r}")
        return msgspec.to_builtins(grant)  # type: ignore[no-any-return]

    def list_recordings(self, p: ListRecordings) -> dict[str, Any]:
        page = self.q.recordings(
            room_sid=self._room_sid(p.room) if p.room else None, status=p.status, source_sid=p.source_sid,
            grouping_sids=p.grouping_sid, media_type=p.media_type, created_after=_micros(p.date_created_after),
            created_before=_micros(p.date_created_before), page_size=p.page_size, page_token=p.page_token,
        )  # fmt: skip
        scoped = p.room is not None
        return self._paged("recordings", page, lambda r: shapes.recording_json(r, self.base, room_scoped=scoped))
