"""The `openrooms` command.

openrooms serve   [--http H:P] [--store URL] [--nats URL] [--public-url URL] [--state-dir DIR] [--role R]
                  [--dev true|false] [--sdk-dir DIR]
openrooms replay  [--store URL] [--state-dir DIR] [--verify] [--room SID] [--json]
openrooms token   --identity ID [--room NAME] [--ttl S] [--key SID] [--state-dir DIR] [--store URL]
openrooms keys    create [--name NAME] | list | revoke SID   [--state-dir DIR] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from adapters import stacks
from adapters.bootstrap import build_service, open_application
from adapters.config import FLAG_SETTINGS, ROLES, ROOM_TYPES, Config, load_config
from adapters.operator import OperatorError, list_rooms, run_command, show_room, tail_events
from adapters.replay import print_timeline, verify_store
from adapters.store.api_keys import ApiKeys, ApiKeyStoreError
from adapters.store.sql import Database
from adapters.store.url import parse_store_url
from domain.access import mint_token

logger = logging.getLogger("openrooms")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help="where the embedded store and credentials live (OPENROOMS_STATE_DIR)")
    parser.add_argument("--store", help="event store URL: sqlite:///file.db or postgresql://... (OPENROOMS_STORE)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrooms", description="Twilio Video compatible rooms service")
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    _common(serve)
    serve.add_argument("--http", help="HTTP listen address host:port (OPENROOMS_HTTP)")
    serve.add_argument("--nats", help="use this NATS server instead of the bundled one (OPENROOMS_NATS)")
    serve.add_argument("--public-url", help="base URL for absolute URLs in responses (OPENROOMS_PUBLIC_URL)")
    serve.add_argument("--role", choices=ROLES, help="which parts to run (OPENROOMS_ROLE)")
    serve.add_argument(
        "--access-log", choices=("true", "false"), help="log every HTTP request (OPENROOMS_ACCESS_LOG, default false)"
    )
    serve.add_argument(
        "--dev", choices=("true", "false"),
        help="POST /dev/token mints tokens for anyone, for the demo page at / (OPENROOMS_DEV, default false)",
    )  # fmt: skip
    serve.add_argument(
        "--sdk-dir", metavar="DIR",
        help="the node_modules/twilio-video/dist the demo page loads the SDK from (OPENROOMS_SDK_DIR, "
        "default <state dir>/sdk/node_modules/twilio-video/dist)",
    )  # fmt: skip
    account = serve.add_argument_group("account settings (as in Twilio's Console)")
    account.add_argument(
        "--client-room-creation", choices=("true", "false"),
        help="let clients create rooms by connecting to an unknown name (OPENROOMS_CLIENT_ROOM_CREATION, default true)",
    )  # fmt: skip
    account.add_argument(
        "--default-room-type", choices=ROOM_TYPES, help="type of ad-hoc rooms (OPENROOMS_DEFAULT_ROOM_TYPE)"
    )
    account.add_argument(
        "--default-status-callback",
        metavar="URL",
        help="status callback of ad-hoc rooms (OPENROOMS_DEFAULT_STATUS_CALLBACK)",
    )
    account.add_argument(
        "--default-status-callback-method", choices=("GET", "POST"),
        help="its method (OPENROOMS_DEFAULT_STATUS_CALLBACK_METHOD, default POST)",
    )  # fmt: skip
    account.add_argument(
        "--record-participants-on-connect", choices=("true", "false"),
        help="record ad-hoc rooms' participants (OPENROOMS_RECORD_PARTICIPANTS_ON_CONNECT, default false)",
    )  # fmt: skip
    account.add_argument(
        "--rate-limit", metavar="PER_SECOND",
        help="/v1 requests per second per credential, 0 = unlimited (OPENROOMS_RATE_LIMIT)",
    )  # fmt: skip

    replay = commands.add_parser("replay", help="print the audit timeline of the log, or verify it")
    _common(replay)
    replay.add_argument("--verify", action="store_true", help="rebuild everything, check invariants, compare")
    replay.add_argument("--room", help="only this room's events in the timeline")
    replay.add_argument("--json", action="store_true", help="one JSON object per line")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument("--workers", type=int, help="processes for --verify (default: one per core on large logs)")
    rooms = commands.add_parser("rooms", help="list or show rooms (over NATS)")
    rooms_sub = rooms.add_subparsers(dest="rooms_command", required=True)
    listing = rooms_sub.add_parser("list", help="list rooms")
    _common(listing)
    listing.add_argument("--nats", help="NATS URL (default: the one `serve` wrote to the state dir)")
    listing.add_argument("--status", default="in-progress", help="in-progress (default), completed, or all")
    show = rooms_sub.add_parser("show", help="one room and its participants")
    _common(show)
    show.add_argument("--nats", help="NATS URL")
    show.add_argument("room", help="room SID or unique name")

    events = commands.add_parser("events", help="follow the event stream (over NATS)")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="print events as they happen")
    _common(tail)
    tail.add_argument("--nats", help="NATS URL")
    tail.add_argument("--room", help="only this room's events")
    tail.add_argument("--all", action="store_true", help="start from the first event in the stream")

    token = commands.add_parser("token", help="print an access token (Twilio format) for a client SDK")
    _common(token)
    token.add_argument("--identity", required=True, help="the participant identity (1..128 characters)")
    token.add_argument("--room", help="restrict the token to this room (unique name or SID)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (1..86400, default 3600)")
    token.add_argument("--key", help="sign with this stored API key SID (default: the primary key)")

    keys = commands.add_parser("keys", help="create, list or revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create_key = keys_sub.add_parser("create", help="create an API key; prints its SID and secret once")
    _common(create_key)
    create_key.add_argument("--name", default="", help="a friendly name")
    _common(keys_sub.add_parser("list", help="list API keys (never their secrets)"))
    revoke_key = keys_sub.add_parser("revoke", help="revoke an API key; servers stop accepting it within seconds")
    _common(revoke_key)
    revoke_key.add_argument("sid", help="the API key SID (SK...)")

    command = commands.add_parser("cmd", help="send one command (over NATS) and print the reply")
    _common(command)
    command.add_argument("--nats", help="NATS URL")
    command.add_argument("name", help="command name, e.g. create_room")
    command.add_argument("body", nargs="?", default="{}", help="JSON body; command_id is added if missing")
    return parser


def _print_banner(config: Config) -> None:
    c = config.credentials
    print(f"openrooms: store {config.store_url}", flush=True)
    print(f"openrooms: account SID {c.account_sid}", flush=True)
    print(f"openrooms: API key SID {c.api_key_sid}", flush=True)
    if c.generated:
        print(f"openrooms: generated credentials kept in {config.state_dir / 'credentials.json'}:", flush=True)
        print(f"openrooms:   auth token {c.auth_token}", flush=True)
        print(f"openrooms:   API key secret {c.api_key_secret}", flush=True)


async def _serve(config: Config) -> int:
    service = build_service(config)
    stopping, started = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    stacks.on_signal(loop)

    async def report_if_slow() -> None:
        await stopping.wait()
        await stacks.report_slow_stop()

    reporter = asyncio.create_task(report_if_slow())
    _print_banner(config)
    print(f"openrooms: NATS {service.nats_url}", flush=True)
    runner = asyncio.create_task(service.run(stopping, started))
    await asyncio.wait({runner, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if started.is_set():
        print(
            f"openrooms: HTTP http://{config.http.rpartition(':')[0]}:{service.http_port} (/healthz, /metrics)",
            flush=True,
        )
        print(f"openrooms: engine running, role {config.role} (Ctrl-C or SIGTERM to stop)", flush=True)
    try:
        await runner
    finally:
        reporter.cancel()
    print("openrooms: stopped", flush=True)
    return 0


def _replay(config: Config, args: argparse.Namespace) -> int:
    app = open_application(config.store_url)
    progress = not args.no_progress and sys.stderr.isatty()
    if not args.verify:
        print_timeline(app, sys.stdout, room=args.room, as_json=args.json, progress=progress)
        return 0
    app.close()
    report = verify_store(config.store_url, config.credentials.account_sid, progress=progress, workers=args.workers)
    if args.json:
        import json

        print(
            json.dumps(
                {
                    "events": report.events,
                    "consistent": report.consistent,
                    "problems": report.problems,
                    "differences": report.differences,
                }
            )
        )
    else:
        print(f"replayed {report.events} events")
        for line in report.problems:
            print(f"invariant violated: {line}")
        for line in report.differences:
            print(f"read model differs: {line}")
        print("consistent" if report.consistent else "NOT consistent")
    return 0 if report.consistent else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(
            state_dir=args.state_dir,
            store=args.store,
            http=getattr(args, "http", None),
            nats=getattr(args, "nats", None),
            public_url=getattr(args, "public_url", None),
            role=getattr(args, "role", None),
            overrides={env: str(value) for dest, env in FLAG_SETTINGS.items() if (value := getattr(args, dest, None))},
        )
    except ValueError as exc:
        print(f"openrooms: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return asyncio.run(_serve(config))
    if args.command == "replay":
        return _replay(config, args)
    if args.command in ("token", "keys"):
        if config.credentials.generated:
            print(f"openrooms: generated credentials kept in {config.state_dir / 'credentials.json'}", file=sys.stderr)
        try:
            return _token(config, args) if args.command == "token" else _keys(config, args)
        except (ApiKeyStoreError, OSError) as exc:
            print(f"openrooms: {exc}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_operate(config, args))
    except (OperatorError, OSError, TimeoutError) as exc:
        print(f"openrooms: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _open_keys(config: Config) -> ApiKeys:
    return ApiKeys(Database.from_url(parse_store_url(config.store_url).read_model_url()))


def _stored_secret(config: Config, key_sid: str) -> str | None:
    keys = _open_keys(config)
    try:
        return keys.secret(key_sid)
    finally:
        keys.close()


def _token(config: Config, args: argparse.Namespace) -> int:
    credentials = config.credentials
    key_sid = args.key or credentials.api_key_sid
    if key_sid == credentials.api_key_sid:
        secret: str | None = credentials.api_key_secret
    else:
        secret = _stored_secret(config, key_sid)
    if secret is None:
        print(f"openrooms: no active API key {key_sid} in the store {config.store_url}", file=sys.stderr)
        return 1
    try:
        token = mint_token(
            account_sid=credentials.account_sid,
            key_sid=key_sid,
            key_secret=secret,
            identity=args.identity,
            room=args.room,
            ttl=args.ttl,
            now=int(time.time()),
        )
    except ValueError as exc:
        print(f"openrooms: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _keys(config: Config, args: argparse.Namespace) -> int:
    keys = _open_keys(config)
    try:
        if args.keys_command == "create":
            sid, secret = keys.create(args.name)
            print(f"sid {sid}")
            print(f"secret {secret}")
            print("openrooms: the secret is shown only this once; keep it now", file=sys.stderr)
            return 0
        if args.keys_command == "list":
            print(f"{'SID':<34}  {'STATUS':<7}  {'CREATED':<20}  NAME")
            print(f"{config.credentials.api_key_sid:<34}  {'primary':<7}  {'-':<20}  (from the credentials)")
            for key in keys.list():
                created = datetime.fromtimestamp(key.date_created / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                print(f"{key.sid:<34}  {'active' if key.active else 'revoked':<7}  {created:<20}  {key.friendly_name}")
            return 0
        return _revoke(config, keys, args.sid)
    finally:
        keys.close()


def _revoke(config: Config, keys: ApiKeys, sid: str) -> int:
    if keys.revoke(sid):
        print(f"revoked {sid}")
        return 0
    if sid == config.credentials.api_key_sid:
        problem = "is the primary key from the credentials (OPENROOMS_API_KEY_SID or credentials.json)"
    elif any(key.sid == sid for key in keys.list()):
        problem = "is already revoked"
    else:
        problem = f"is not a key in the store {config.store_url}"
    print(f"openrooms: cannot revoke {sid}: it {problem}", file=sys.stderr)
    return 1


async def _operate(config: Config, args: argparse.Namespace) -> int:
    if args.command == "cmd":
        return await run_command(config, args.name, args.body)
    if args.command == "rooms" and args.rooms_command == "list":
        return await list_rooms(config, None if args.status == "all" else args.status)
    if args.command == "rooms":
        return await show_room(config, args.room)
    return await tail_events(config, args.room, args.all)


if __name__ == "__main__":
    sys.exit(main())
