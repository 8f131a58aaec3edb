"""Status queries over the read model, with Twilio's filters and keyset paging.

Every query first makes the read model include every committed event (read-your-writes: a
GET after a successful command sees it). Rows are plain dicts with the projection's columns;
the HTTP and NATS edges turn them into Twilio's JSON shapes.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import msgspec

from adapters.store.read_model import ReadModel, normalize, table_name
from domain.ids import ROOM_PREFIX, is_sid
from domain.projections import SCHEMA, Row


class Page(NamedTuple):
    rows: list[Row]
    next_token: str | None


class PageTokenError(ValueError):
    pass


def _encode_token(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(values))).decode().rstrip("=")


def _decode_token(token: str) -> list[Any]:
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, msgspec.DecodeError) as exc:
        raise PageTokenError(f"invalid PageToken {token!r}") from exc
    if not isinstance(values, list) or len(values) != 2:
        raise PageTokenError(f"invalid PageToken {token!r}")
    return values


class Filter(NamedTuple):
    column: str
    op: str  # "=", ">=", "<", "IN"
    value: Any


@functools.cache
def _select_from(table: str) -> str:
    """`SELECT <every column> FROM <table>`, built once per table (joining the quoted names took
    a third of a lookup by key)."""
    return f"SELECT {', '.join(chr(34) + c + chr(34) for c in SCHEMA[table].columns)} FROM {table_name(table)}"


class Queries:
    def __init__(self, read_model: ReadModel, refresh: Callable[[], None]) -> None:
        self.read_model = read_model
        self.refresh = refresh

    # --- generic -------------------------------------------------------------------------

    def _select(
        self,
        table: str,
        filters: Sequence[Filter],
        *,
        order: str | None = "date_created",
        desc: bool = False,
        limit: int | None = None,
        after: list[Any] | None = None,
    ) -> list[Row]:
        columns = SCHEMA[table].columns
        sql = [_select_from(table)]
        where: list[str] = []
        params: list[Any] = []
        for f in filters:
            if f.op == "IN":
                where.append(f'"{f.column}" IN ({", ".join("?" * len(f.value))})')
                params.extend(f.value)
            else:
                where.append(f'"{f.column}" {f.op} ?')
                params.append(f.value)
        if after is not None:
            where.append(f'("{order}", sid) {"<" if desc else ">"} (?, ?)')
            params.extend(after)
        if where:
            sql.append("WHERE " + " AND ".join(where))
        direction = "DESC" if desc else "ASC"
        if order is not None:
            sql.append(f'ORDER BY "{order}" {direction}, sid {direction}')
        if limit is not None:
            sql.append(f"LIMIT {int(limit)}")
        return [normalize(dict(zip(columns, r, strict=True))) for r in self.read_model.db.query(" ".join(sql), params)]

    def _page(
        self, table: str, filters: Sequence[Filter], page_size: int, page_token: str | None, *, desc: bool = False
    ) -> Page:
        self.refresh()
        after = _decode_token(page_token) if page_token else None
        rows = self._select(table, filters, desc=desc, limit=page_size + 1, after=after)
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = _encode_token([rows[-1]["date_created"], rows[-1]["sid"]]) if more and rows else None
        return Page(rows, token)

    def by_key(self, table: str, *key: Any) -> Row | None:
        """One row by its primary key (any status)."""
        self.refresh()
        rows = self._select(table, [Filter(c, "=", v) for c, v in zip(SCHEMA[table].key, key, strict=True)], order=None)
        return rows[0] if rows else None

    def _one(self, table: str, filters: Sequence[Filter]) -> Row | None:
        self.refresh()
        rows = self._select(table, filters, limit=1)
        return rows[0] if rows else None

    @staticmethod
    def _dates(after: int | None, before: int | None) -> list[Filter]:
        out = []
        if after is not None:
            out.append(Filter("date_created", ">=", after))
        if before is not None:
            out.append(Filter("date_created", "<", before))
        return out

    # --- rooms ---------------------------------------------------------------------------

    def room(self, sid_or_name: str) -> Row | None:
        """By SID (any status) or by the unique name of an in-progress room."""
        if is_sid(sid_or_name, ROOM_PREFIX):
            return self._one("rooms", [Filter("sid", "=", sid_or_name)])
        return self._one("rooms", [Filter("unique_name", "=", sid_or_name), Filter("status", "=", "in-progress")])

    def rooms(
        self,
        *,
        status: str | None = "in-progress",
        unique_name: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> Page:
        filters = self._dates(created_after, created_before)
        if status is not None:
            filters.append(Filter("status", "=", status))
        if unique_name is not None:
            filters.append(Filter("unique_name", "=", unique_name))
        return self._page("rooms", filters, page_size, page_token, desc=True)

    # --- participants --------------------------------------------------------------------

    def participant(self, room_sid: str, sid_or_identity: str) -> Row | None:
        """By PA SID, or by the identity of a connected participant."""
        if sid_or_identity.startswith("PA") and is_sid(sid_or_identity, "PA"):
            return self._one("participants", [Filter("room_sid", "=", room_sid), Filter("sid", "=", sid_or_identity)])
        return self._one(
            "participants",
            [
                Filter("room_sid", "=", room_sid),
                Filter("identity", "=", sid_or_identity),
                Filter("status", "=", "connected"),
            ],
        )

    def participants(
        self,
        room_sid: str,
        *,
        status: str | None = None,
        identity: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> Page:
        filters = [Filter("room_sid", "=", room_sid), *self._dates(created_after, created_before)]
        if status is not None:
            filters.append(Filter("status", "=", status))
        if identity is not None:
            filters.append(Filter("identity", "=", identity))
        return self._page("participants", filters, page_size, page_token)

    # --- tracks and rules ----------------------------------------------------------------

    def published_track(self, participant_sid: str, sid_or_name: str) -> Row | None:
        column = "sid" if is_sid(sid_or_name, "MT") else "name"
        return self._one(
            "published_tracks", [Filter("participant_sid", "=", participant_sid), Filter(column, "=", sid_or_name)]
        )

    def published_tracks(self, participant_sid: str, *, page_size: int = 50, page_token: str | None = None) -> Page:
        return self._page("published_tracks", [Filter("participant_sid", "=", participant_sid)], page_size, page_token)

    def subscribed_track(self, participant_sid: str, sid: str) -> Row | None:
        return self._one(
            "subscribed_tracks", [Filter("participant_sid", "=", participant_sid), Filter("sid", "=", sid)]
        )

    def subscribed_tracks(self, participant_sid: str, *, page_size: int = 50, page_token: str | None = None) -> Page:
        return self._page("subscribed_tracks", [Filter("participant_sid", "=", participant_sid)], page_size, page_token)

    def subscribe_rules(self, participant_sid: str) -> Row | None:
        self.refresh()
        rows = self.read_model.db.query(
            "SELECT participant_sid, room_sid, rules, date_created, date_updated FROM rm_subscribe_rules "
            "WHERE participant_sid = ?",
            (participant_sid,),
        )
        return dict(zip(SCHEMA["subscribe_rules"].columns, rows[0], strict=True)) if rows else None

    def recording_rules(self, room_sid: str) -> Row | None:
        self.refresh()
        rows = self.read_model.db.query(
            "SELECT room_sid, rules, date_created, date_updated FROM rm_recording_rules WHERE room_sid = ?", (room_sid,)
        )
        return dict(zip(SCHEMA["recording_rules"].columns, rows[0], strict=True)) if rows else None

    # --- recordings ----------------------------------------------------------------------

    def recording(self, sid: str) -> Row | None:
        return self._one("recordings", [Filter("sid", "=", sid)])

    def recordings(
        self,
        *,
        room_sid: str | None = None,
        status: str | None = None,
        source_sid: str | None = None,
        grouping_sids: Sequence[str] = (),
        media_type: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> Page:
        filters = self._dates(created_after, created_before)
        for column, value in (
            ("room_sid", room_sid),
            ("status", status),
            ("source_sid", source_sid),
            ("type", media_type),
        ):
            if value is not None:
                filters.append(Filter(column, "=", value))
        for grouping in grouping_sids:
            filters.append(Filter("room_sid" if grouping.startswith("RM") else "participant_sid", "=", grouping))
        return self._page("recordings", filters, page_size, page_token, desc=True)

    # --- deadlines (the scheduler) -------------------------------------------------------

    def next_deadline(self) -> int | None:
        """The earliest deadline of any in-progress room or connected participant (µs)."""
        self.refresh()
        rows = self.read_model.db.query(
            "SELECT MIN(d) FROM ("
            " SELECT MIN(unused_deadline) AS d FROM rm_rooms WHERE status = 'in-progress'"
            " UNION ALL SELECT MIN(empty_deadline) FROM rm_rooms WHERE status = 'in-progress'"
            " UNION ALL SELECT MIN(end_deadline) FROM rm_rooms WHERE status = 'in-progress'"
            " UNION ALL SELECT MIN(deadline) FROM rm_participants WHERE status = 'connected'"
            ") AS deadlines"
        )
        return rows[0][0] if rows and rows[0][0] is not None else None

    def due(self, now: int) -> list[tuple[str, int]]:
        """(room SID, its earliest deadline) for every room with something due at `now` (µs)."""
        self.refresh()
        rows = self.read_model.db.query(
            "SELECT room_sid, MIN(d) FROM ("
            " SELECT sid AS room_sid, unused_deadline AS d FROM rm_rooms"
            " WHERE status = 'in-progress' AND unused_deadline <= ?"
            " UNION ALL SELECT sid, empty_deadline FROM rm_rooms WHERE status = 'in-progress' AND empty_deadline <= ?"
            " UNION ALL SELECT sid, end_deadline FROM rm_rooms WHERE status = 'in-progress' AND end_deadline <= ?"
            " UNION ALL SELECT room_sid, deadline FROM rm_participants WHERE status = 'connected' AND deadline <= ?"
            ") AS due GROUP BY room_sid ORDER BY 2",
            (now, now, now, now),
        )
        return [(str(r[0]), int(r[1])) for r in rows]
