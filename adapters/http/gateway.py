"""How the REST API reaches the engine: the same commands and queries as `rooms.cmd.*`/`rooms.qry.*`.

Two carriers, one protocol. In a process that runs the engine (`--role all|engine`), the REST
handlers call the command and query services directly, skipping a network hop; a process with
`--role http` sends the same JSON bodies over NATS request/reply. Either way the answer is the
reply envelope of adapters.nats.envelope, decoded.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from adapters.nats import envelope
from adapters.nats.command_service import CommandService
from adapters.nats.query_service import QueryService


class Reply(msgspec.Struct):
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"null")
    """The result's JSON as it came: a REST answer is mostly these bytes, unparsed (`value()` parses)."""
    error: dict[str, Any] | None = None

    def value(self) -> Any:
        return msgspec.json.decode(self.result)


_DECODER = msgspec.json.Decoder(Reply)
_ENCODER = msgspec.json.Encoder()


class Gateway(Protocol):
    async def command(self, name: str, body: dict[str, Any]) -> Reply: ...

    async def query(self, name: str, body: dict[str, Any]) -> Reply: ...


class LocalGateway:
    """Calls the command and query services of this process."""

    def __init__(self, commands: CommandService, queries: QueryService) -> None:
        self.commands = commands
        self.queries = queries

    async def command(self, name: str, body: dict[str, Any]) -> Reply:
        return _DECODER.decode(await self.commands.answer(name, _ENCODER.encode(body)))

    async def query(self, name: str, body: dict[str, Any]) -> Reply:
        return _DECODER.decode(await self.queries.answer(name, _ENCODER.encode(body)))


class NatsGateway:
    """Sends requests to whichever engine process answers on NATS."""

    def __init__(self, nc: Client, timeout: float = 10.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def command(self, name: str, body: dict[str, Any]) -> Reply:
        return await self._request(f"rooms.cmd.{name}", body)

    async def query(self, name: str, body: dict[str, Any]) -> Reply:
        return await self._request(f"rooms.qry.{name}", body)

    async def _request(self, subject: str, body: dict[str, Any]) -> Reply:
        try:
            msg = await self.nc.request(subject, _ENCODER.encode(body), timeout=self.timeout)
        except (NoRespondersError, NatsTimeoutError):
            return _DECODER.decode(envelope.error(UNAVAILABLE, "no engine answered; try again", 503))
        return _DECODER.decode(msg.data)


UNAVAILABLE = 20503
