"""HTTP Basic authentication for `/v1`, as Twilio: `AccountSid:AuthToken` or `ApiKeySid:ApiKeySecret`.

The check itself (constant-time comparisons, API keys from the store) is the KeyRing's; this
module reads the header and answers Twilio's 401 (code 20003). An optional per-credential rate
limit answers 429 (code 20429) with `Retry-After`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.http.errors import Handler, twilio_error

logger = logging.getLogger(__name__)
Authenticate = Callable[[str, str], bool]
PROTECTED = "/v1/"


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def _unauthorized() -> web.Response:
    response = twilio_error(401, "Authentication Error - invalid username", 20003)
    response.headers["WWW-Authenticate"] = 'Basic realm="openrooms"'
    return response


class RateLimit:
    """A token bucket per credential: `rate` requests a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_seconds(self, who: str) -> float:
        """0 when `who` may go now (and one token is taken), else the seconds until a token frees up."""
        now = self.clock()
        tokens, since = self._buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - since) * self.rate)
        if tokens >= 1.0:
            self._buckets[who] = (tokens - 1.0, now)
            return 0.0
        self._buckets[who] = (tokens, now)
        return (1.0 - tokens) / self.rate


def basic_auth(authenticate: Authenticate, rate_limit: RateLimit | None = None) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PROTECTED):
            return await handler(request)
        given = _credentials(request.headers.get("Authorization", ""))
        if given is None or not authenticate(*given):
            logger.info("%s %s: authentication failed (user %r)", request.method, request.path, given and given[0])
            return _unauthorized()
        if rate_limit is not None:
            wait = rate_limit.wait_seconds(given[0])
            if wait > 0:
                response = twilio_error(429, "Too Many Requests", 20429)
                response.headers["Retry-After"] = str(math.ceil(wait))
                return response
        return await handler(request)

    return middleware
