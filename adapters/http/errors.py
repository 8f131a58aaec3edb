"""Twilio's error body for everything that fails at the HTTP edge, in one place.

    {"code": 20404, "message": "The requested resource /x was not found",
     "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}

Never a traceback: a fault of ours is logged and answered 500 with code 20500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from adapters.http.params import BadParameterError

logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTERNAL: Final = 20500
TWILIO_CODES: Final = {400: 20001, 401: 20003, 403: 20403, 404: 20404, 405: 20004, 429: 20429}
"""HTTP status → Twilio error code; any other 4xx is 20001 and any 5xx is 20500."""


def twilio_error(status: int, message: str, code: int | None = None) -> web.Response:
    if code is None:
        code = TWILIO_CODES.get(status, INTERNAL if status >= 500 else 20001)
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)


def _message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"The requested resource {request.path} was not found"
    if exc.status == 405:
        return f"Method {request.method} is not allowed on {request.path}"
    return exc.reason


@web.middleware
async def twilio_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadParameterError as exc:
        logger.info("%s %s: %s", request.method, request.path, exc)
        return twilio_error(400, str(exc), exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return twilio_error(exc.status, _message(request, exc))
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return twilio_error(500, "An internal server error occurred", INTERNAL)
