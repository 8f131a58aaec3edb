"""The HTTP edge: `/healthz`, `/metrics`, and Twilio-shaped errors for everything that fails.

Every error a client sees is Twilio's legacy body, never a traceback:

    {"code": 20404, "message": "The requested resource /x was not found",
     "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from adapters.metrics import Metrics

logger = logging.getLogger(__name__)

Health = Callable[[], Awaitable[dict[str, object]]]
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
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return twilio_error(exc.status, _message(request, exc))
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return twilio_error(500, "An internal server error occurred", INTERNAL)


def build_app(*, metrics: Metrics, health: Health) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        report = await health()
        return web.json_response(report, status=200 if report.get("status") == "ok" else 503)

    async def prometheus(_: web.Request) -> web.Response:
        body, content_type = await asyncio.to_thread(metrics.render)  # the status gauges query the read model
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application(middlewares=[twilio_errors])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app


async def serve_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving `app` on host:port (0: any free port, see `runner.addresses`); stop with `runner.cleanup()`."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
