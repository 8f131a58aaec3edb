"""The reply envelope of every `rooms.cmd.*` and `rooms.qry.*` request.

    {"ok": true, "result": {...}}
    {"ok": false, "error": {"code": 53113, "message": "Room exists: standup", "status": 400}}

Malformed requests (bad JSON, unknown or mistyped fields: msgspec names the path) answer with
code 20001; an unknown command or query name with 20404; a fault of ours with 20500.
"""

from __future__ import annotations

from typing import Any

import msgspec

MALFORMED = 20001
NOT_FOUND = 20404
INTERNAL = 20500

_ENCODER = msgspec.json.Encoder()


def ok(result: Any) -> bytes:
    return _ENCODER.encode({"ok": True, "result": result})


def error(code: int, message: str, status: int = 400) -> bytes:
    return _ENCODER.encode({"ok": False, "error": {"code": code, "message": message, "status": status}})
