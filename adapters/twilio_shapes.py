"""Read-model rows in Twilio's JSON shapes (the Video v1 resources), for NATS and REST alike.

Times are `YYYY-MM-DDTHH:MM:SSZ` (what the helper libraries parse); `url` and `links` are
absolute, built from the service's public URL. Twilio's names are mapped here, once.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

Row = dict[str, Any]


def iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    return _iso_second(micros // 1_000_000)


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """Replies repeat the same few seconds (a resource's creation, this second): formatted once."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))  # 2 µs; datetime takes 5


def room_json(row: Row, base: str) -> dict[str, Any]:
    url = f"{base}/v1/Rooms/{row['sid']}"
    return {
        "account_sid": row["account_sid"],
        "date_created": iso(row["date_created"]),
        "date_updated": iso(row["date_updated"]),
        "status": row["status"],
        "type": row["type"],
        "sid": row["sid"],
        "enable_turn": True,
        "unique_name": row["unique_name"],
        "max_participants": row["max_participants"],
        "max_participant_duration": row["max_participant_duration"],
        "max_concurrent_published_tracks": row["max_concurrent_published_tracks"],
        "duration": row["duration"],
        "status_callback_method": row["status_callback_method"],
        "status_callback": row["status_callback"],
        "record_participants_on_connect": row["record_participants_on_connect"],
        "video_codecs": [c for c in (row["video_codecs"] or "").split(",") if c] or None,
        "media_region": row["media_region"],
        "audio_only": row["audio_only"],
        "empty_room_timeout": row["empty_room_timeout"],
        "unused_room_timeout": row["unused_room_timeout"],
        "end_time": iso(row["end_time"]),
        "large_room": row["large_room"],
        "url": url,
        "links": {
            "participants": f"{url}/Participants",
            "recordings": f"{url}/Recordings",
            "transcriptions": f"{url}/Transcriptions",
            "recording_rules": f"{url}/RecordingRules",
        },
    }


def participant_json(row: Row, base: str) -> dict[str, Any]:
    url = f"{base}/v1/Rooms/{row['room_sid']}/Participants/{row['sid']}"
    return {
        "account_sid": row["account_sid"],
        "room_sid": row["room_sid"],
        "sid": row["sid"],
        "identity": row["identity"],
        "status": row["status"],
        "date_created": iso(row["date_created"]),
        "date_updated": iso(row["date_updated"]),
        "start_time": iso(row["start_time"]),
        "end_time": iso(row["end_time"]),
        "duration": row["duration"],
        "url": url,
        "links": {
            "published_tracks": f"{url}/PublishedTracks",
            "subscribed_tracks": f"{url}/SubscribedTracks",
            "subscribe_rules": f"{url}/SubscribeRules",
            "anonymize": f"{url}/Anonymize",
        },
    }


def _track_json(row: Row, collection: str, base: str, **extra: Any) -> dict[str, Any]:
    return {
        "sid": row["sid"],
        "participant_sid": row["participant_sid"],
        **extra,
        "room_sid": row["room_sid"],
        "name": row["name"],
        "date_created": iso(row["date_created"]),
        "date_updated": iso(row["date_updated"]),
        "enabled": row["enabled"],
        "kind": row["kind"],
        "url": f"{base}/v1/Rooms/{row['room_sid']}/Participants/{row['participant_sid']}/{collection}/{row['sid']}",
    }


def published_track_json(row: Row, base: str) -> dict[str, Any]:
    return _track_json(row, "PublishedTracks", base)


def subscribed_track_json(row: Row, base: str) -> dict[str, Any]:
    return _track_json(row, "SubscribedTracks", base, publisher_sid=row["publisher_sid"])


def subscribe_rules_json(row: Row) -> dict[str, Any]:
    return {
        "participant_sid": row["participant_sid"],
        "room_sid": row["room_sid"],
        "rules": json.loads(row["rules"]),
        "date_created": iso(row["date_created"]),
        "date_updated": iso(row["date_updated"]),
    }


def recording_rules_json(row: Row) -> dict[str, Any]:
    """Recording rules carry only the filters they set (Twilio's spec: `@JsonInclude(NON_NULL)`, no priority)."""
    rules = [{k: v for k, v in rule.items() if v is not None and k != "priority"} for rule in json.loads(row["rules"])]
    return {
        "room_sid": row["room_sid"],
        "rules": rules,
        "date_created": iso(row["date_created"]),
        "date_updated": iso(row["date_updated"]),
    }


def recording_json(row: Row, base: str, *, room_scoped: bool = False) -> dict[str, Any]:
    url = (
        f"{base}/v1/Rooms/{row['room_sid']}/Recordings/{row['sid']}"
        if room_scoped
        else f"{base}/v1/Recordings/{row['sid']}"
    )
    shape: dict[str, Any] = {
        "account_sid": row["account_sid"],
        "status": row["status"],
        "date_created": iso(row["date_created"]),
        "sid": row["sid"],
        "source_sid": row["source_sid"],
        "size": row["size"],
        "type": row["type"],
        "duration": row["duration"],
        "container_format": row["container_format"],
        "codec": row["codec"],
        "grouping_sids": {"room_sid": row["room_sid"], "participant_sid": row["participant_sid"]},
        "track_name": row["track_name"],
        "offset": row["offset"],
        "media_external_location": row["media_location"],
        "url": url,
        "links": {"media": f"{url}/Media"},
    }
    if room_scoped:
        shape["room_sid"] = row["room_sid"]
    else:
        shape["status_callback"] = None
        shape["status_callback_method"] = "POST"
    return shape
