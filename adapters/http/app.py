"""The HTTP server: Twilio's `/v1` API (adapters.http.rest), `/healthz`, `/metrics`, and the routes
the composition root adds (`/signaling`).

Every error a client sees is Twilio's legacy body (adapters.http.errors), never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.http.auth import Authenticate, RateLimit, basic_auth
from adapters.http.errors import twilio_errors
from adapters.http.rest import RestApi
from adapters.metrics import Metrics

logger = logging.getLogger(__name__)

Health = Callable[[], Awaitable[dict[str, object]]]


def build_app(
    *,
    metrics: Metrics,
    health: Health,
    rest: RestApi | None = None,
    authenticate: Authenticate | None = None,
    rate_limit: RateLimit | None = None,
    routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    """The app; with `rest`, the `/v1` API behind HTTP Basic auth (`authenticate`); `routes` are
    added as they are (the `/signaling` WebSocket of the media role), outside `/v1`'s auth."""

    async def healthz(_: web.Request) -> web.Response:
        report = await health()
        return web.json_response(report, status=200 if report.get("status") == "ok" else 503)

    async def prometheus(_: web.Request) -> web.Response:
        body, content_type = await asyncio.to_thread(metrics.render)  # the status gauges query the read model
        return web.Response(body=body, headers={"Content-Type": content_type})

    middlewares: list[Middleware] = [twilio_errors]
    if rest is not None:
        if authenticate is None:
            raise ValueError("the /v1 API needs an authenticate function")
        middlewares.append(basic_auth(authenticate, rate_limit))
    app = web.Application(middlewares=middlewares)
    if rest is not None:
        app.router.add_routes(rest.routes())
    app.router.add_routes(routes)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app


async def serve_http(app: web.Application, host: str, port: int, *, access_log: bool = False) -> web.AppRunner:
    """Start serving `app` on host:port (0: any free port, see `runner.addresses`); stop with `runner.cleanup()`."""
    # The access log costs ~130 us of CPU per request (40 % of a minimal handler): opt-in.
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access") if access_log else None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
