"""The operator CLI over NATS: `openrooms rooms list|show`, `events tail`, `cmd`.

The NATS URL is `--nats`, `OPENROOMS_NATS`, or the one a running `openrooms serve` wrote to
`<state dir>/nats.url`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any, TextIO

import nats
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from adapters.config import Config
from adapters.nats.server import read_url


class OperatorError(RuntimeError):
    pass


def nats_url(config: Config) -> str:
    url = config.nats_url or read_url(config.state_dir)
    if url is None:
        raise OperatorError(
            f"no NATS URL: pass --nats, set OPENROOMS_NATS, or run `openrooms serve` in {config.state_dir}"
        )
    return url


async def _request(nc: Client, subject: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=timeout)
    decoded: dict[str, Any] = json.loads(reply.data)
    return decoded


async def run_command(config: Config, name: str, body_json: str, out: TextIO = sys.stdout) -> int:
    try:
        body = json.loads(body_json) if body_json.strip() else {}
    except json.JSONDecodeError as exc:
        raise OperatorError(f"the command body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise OperatorError("the command body must be a JSON object")
    body.setdefault("command_id", f"cli-{uuid.uuid4().hex}")
    nc = await nats.connect(nats_url(config))
    try:
        reply = await _request(nc, f"rooms.cmd.{name}", body)
    finally:
        await nc.close()
    out.write(json.dumps(reply, indent=2) + "\n")
    return 0 if reply.get("ok") else 1


async def list_rooms(config: Config, status: str | None, out: TextIO = sys.stdout) -> int:
    nc = await nats.connect(nats_url(config))
    try:
        token: str | None = None
        out.write(f"{'SID':<36} {'STATUS':<12} {'TYPE':<13} {'CREATED':<21} NAME\n")
        while True:
            body: dict[str, Any] = {"status": status, "page_size": 200, "page_token": token}
            reply = await _request(nc, "rooms.qry.list_rooms", body)
            if not reply.get("ok"):
                out.write(json.dumps(reply) + "\n")
                return 1
            for room in reply["result"]["rooms"]:
                out.write(
                    f"{room['sid']:<36} {room['status']:<12} {room['type']:<13} "
                    f"{room['date_created']:<21} {room['unique_name']}\n"
                )
            token = reply["result"]["next_page_token"]
            if token is None:
                return 0
    finally:
        await nc.close()


async def show_room(config: Config, room: str, out: TextIO = sys.stdout) -> int:
    nc = await nats.connect(nats_url(config))
    try:
        found = await _request(nc, "rooms.qry.get_room", {"room": room})
        if not found.get("ok"):
            out.write(json.dumps(found, indent=2) + "\n")
            return 1
        people = await _request(nc, "rooms.qry.list_participants", {"room": room, "page_size": 1000})
        shown = {"room": found["result"], "participants": people.get("result", {}).get("participants", [])}
        out.write(json.dumps(shown, indent=2) + "\n")
        return 0
    finally:
        await nc.close()


async def tail_events(
    config: Config, room: str | None, from_start: bool, out: TextIO = sys.stdout, stop: asyncio.Event | None = None
) -> int:
    nc = await nats.connect(nats_url(config))
    try:
        js = nc.jetstream()
        subject = f"rooms.evt.{room}.>" if room else "rooms.evt.>"
        deliver = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
        subscription = await js.subscribe(subject, stream="ROOMS_EVENTS", deliver_policy=deliver, ordered_consumer=True)
        waiting = stop or asyncio.Event()
        while not waiting.is_set():
            try:
                msg = await subscription.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            out.write(msg.subject + " " + msg.data.decode() + "\n")
            out.flush()
        return 0
    finally:
        await nc.close()
