"""The composition root: builds the engine service from a Config and runs its loops.

Everything is created here and passed down; no module keeps clients or singletons.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from adapters.children import keep_running
from adapters.clock import SystemClock, jittered_backoff
from adapters.command_bus import CommandBus
from adapters.config import Config
from adapters.keyring import KeyRing, TokenVerifier
from adapters.pacing import Pacer
from adapters.scheduler import DeadlineScheduler, SchedulerClock
from adapters.store import wal
from adapters.store.api_keys import ApiKeys
from adapters.store.queries import Queries
from adapters.store.read_model import FOLLOW_STEP, Follower, ReadModel
from adapters.store.recent_rows import RecentRows
from adapters.store.sql import Database
from adapters.store.sqlite import CommandLogSQLiteRecorder
from adapters.store.url import parse_store_url
from adapters.tasks import cancel_and_wait
from adapters.webhooks import Webhooks, WebhookSettings, build_webhooks
from adapters.webhooks.delivery import Delivery
from domain import room
from domain.callbacks import CALLBACK_EVENTS
from domain.engine import Engine, RoomsApplication
from domain.ids import SidSource

if TYPE_CHECKING:
    from aiohttp.web import RouteDef

    from media.worker.plane import MediaPlane

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.5
"""How often the follower looks for events committed by other engine processes."""


_SID_BITS = random.Random(os.urandom(32))
"""SIDs name things, they guard nothing: a generator seeded once from the OS is enough, and it
does not make the engine thread release the interpreter lock for a system call per SID."""


def random_sid(prefix: str) -> str:
    return f"{prefix}{_SID_BITS.getrandbits(128):032x}"


def open_application(store_url: str) -> RoomsApplication:
    return RoomsApplication(env=parse_store_url(store_url).env)


def open_read_model(store_url: str) -> ReadModel:
    return ReadModel(Database.from_url(parse_store_url(store_url).read_model_url()))


@dataclass
class EngineService:
    config: Config
    app: RoomsApplication
    engine: Engine
    bus: CommandBus
    read_model: ReadModel
    follower: Follower
    queries: Queries
    scheduler: DeadlineScheduler
    webhooks: Webhooks
    webhook_observers: list[Callable[[Delivery], None]]
    """Called with every status callback attempt (metrics)."""
    follows_read_model: bool = True
    """Whether this process applies its commits to the read model. `openrooms serve` turns it off
    (`follow_elsewhere`): its relay process follows the log into the read model
    (adapters/relay_process.py); this process then applies events only while a reader waits for
    its writes."""

    def __post_init__(self) -> None:
        self._committed = asyncio.Event()
        self._reader_waiting = asyncio.Event()
        """Set by a reader waiting for its writes: the follower's pacing does not hold it up."""
        self._applied = 0
        self._caught_up = asyncio.Condition()
        self._readers = 0
        """Readers waiting in `read_your_writes`."""
        self.bus.after_batch.append(self._committed.set)
        self.recent = RecentRows()
        account = self.config.credentials.account_sid
        self.engine.on_commit.append(lambda events: self.recent.apply_events(events, account))
        self._ticked = False
        """POLL_SECONDS have passed since `_follow` last polled (its timer fired)."""
        self._deadline_set: datetime | None = None
        """The earliest deadline set by events committed since the follower's last pass."""
        self._callbacks_due = False
        """Events committed since the last batch may have status callbacks."""
        self._notes_lock = threading.Lock()
        self.engine.on_commit.append(self._note_commit)
        self.bus.after_batch.append(self._wake_webhooks)
        self.fresh_queries = Queries(self.read_model, lambda: None)
        """Queries that do not refresh: for callers that awaited `read_your_writes()` first."""

    def follow_elsewhere(self) -> None:
        """Another process (the relay's) follows the log into the read model: this one applies
        events only for readers waiting on its writes, and the scheduler waits for that process
        instead of catching up itself (`Follower.wait_until_followed`, on its thread)."""
        self.follows_read_model = False
        self.scheduler.queries = Queries(self.read_model, self.follower.wait_until_followed)

    async def read_your_writes(self, *, log_end: bool = False) -> None:
        """Wait until the read model includes every event this process committed so far (with
        `log_end`, every event committed by anyone: other engines share the store).

        No database round trip per caller for its own writes: the follower loop catches up once
        per batch and wakes everyone waiting on it.
        """
        target = self.engine.last_written_position
        if log_end:
            log_end_position: int | None = await asyncio.to_thread(self.app.recorder.max_notification_id)
            target = max(target, log_end_position or 0)
        if self._applied >= target:
            return
        self._reader_waiting.set()
        self._committed.set()
        self._readers += 1
        try:
            async with self._caught_up:
                await self._caught_up.wait_for(lambda: self._applied >= target)
        finally:
            self._readers -= 1

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until `stopping` is set; then finish commands in flight and catch up."""
        self._applied = await asyncio.to_thread(self.follower.catch_up)
        async with asyncio.TaskGroup() as group:
            bus = group.create_task(self.bus.run())
            loops = [
                group.create_task(self._follow()),
                group.create_task(self._checkpoint()),
                group.create_task(self.scheduler.run()),
                group.create_task(self.webhooks.run()),
            ]
            await stopping.wait()
            await cancel_and_wait(loops)
            await asyncio.to_thread(self.scheduler.close)  # its last store query, if any, ends
            self.bus.stop()
            await bus
        await asyncio.to_thread(self.follower.catch_up)

    def _note_commit(self, events: list[Any]) -> None:
        """On the engine thread, at commit: the earliest deadline the events set (the scheduler
        needs no pass otherwise), and whether any of them has a status callback (the webhook
        follower needs no pass otherwise; it also polls, for other engines' commits)."""
        earliest = room.earliest_deadline_set(events)
        callbacks = any(self._has_callback(e) for e in events)
        with self._notes_lock:
            if earliest is not None and (self._deadline_set is None or earliest < self._deadline_set):
                self._deadline_set = earliest
            self._callbacks_due = self._callbacks_due or callbacks

    def _has_callback(self, event: Any) -> bool:
        if type(event) not in CALLBACK_EVENTS:
            return False
        cached = self.engine.cached_room(event.originator_id)
        return cached is None or bool(cached.settings.status_callback)  # not in memory: assume it has

    def _wake_webhooks(self) -> None:
        with self._notes_lock:
            due, self._callbacks_due = self._callbacks_due, False
        if due:
            self.webhooks.wake()

    async def _follow(self) -> None:
        """After commits (paced) and every POLL_SECONDS: the read model (here, or where the relay
        process got to) and the scheduler's deadlines."""
        loop = asyncio.get_running_loop()
        pacer = Pacer()
        ticking = loop.call_later(POLL_SECONDS, self._tick)
        try:
            while True:
                await self._committed.wait()
                await pacer.wait(hurry=self._reader_waiting)
                self._reader_waiting.clear()
                self._committed.clear()
                with self._notes_lock:
                    deadline_set, self._deadline_set = self._deadline_set, None
                polling = self._ticked
                if self.follows_read_model or self._readers:
                    reached, more = self.follower.step(FOLLOW_STEP)  # on the loop: see read_model.FOLLOW_STEP
                    if more:
                        self._committed.set()
                elif polling:  # the relay process applies them: where it got to, now and then
                    reached = self.read_model.position()
                else:  # (a reader that finds it behind has the loop step as above)
                    reached = self._applied
                if reached > self._applied:
                    async with self._caught_up:
                        self._applied = reached
                        self._caught_up.notify_all()
                if polling:  # other engines' rooms reach the scheduler this way
                    self._ticked = False
                    ticking = loop.call_later(POLL_SECONDS, self._tick)
                    self.scheduler.poke()
                else:  # this engine's commits: only a deadline brought forward wakes it
                    self.scheduler.notice(deadline_set)
        finally:
            ticking.cancel()

    def _tick(self) -> None:
        """A pass of `_follow` at least every POLL_SECONDS, commits or not (one timer, not a
        timeout per pass)."""
        self._ticked = True
        self._committed.set()

    async def _checkpoint(self) -> None:
        """Checkpoint the SQLite files' WALs (the log's, the read model's) in the background
        while this engine commits, so that no commit waits for one (adapters/store/wal.py)."""
        recorder = self.app.recorder
        checkpoints = [self.read_model.db.checkpoint]
        if isinstance(recorder, CommandLogSQLiteRecorder):
            checkpoints.insert(0, recorder.checkpoint)
        await wal.keep_checkpointed(checkpoints, lambda: self.engine.last_written_position)

    def close(self) -> None:
        self.webhooks.close()
        self.read_model.db.close()
        self.app.close()


def build_engine_service(
    config: Config,
    *,
    clock: Any = None,
    sids: SidSource = random_sid,
    webhook_settings: WebhookSettings | None = None,
) -> EngineService:
    clock = clock or SystemClock()
    app = open_application(config.store_url)
    engine = Engine(app, policy=config.policy, sids=sids, clock=clock.now, backoff=jittered_backoff)
    bus = CommandBus(engine)
    read_model = open_read_model(config.store_url)
    follower = Follower(app, read_model, config.credentials.account_sid)
    queries = Queries(read_model, follower.refresh)
    scheduler_clock: SchedulerClock = clock
    scheduler = DeadlineScheduler(queries, bus.execute, scheduler_clock)
    observers: list[Callable[[Delivery], None]] = []

    def observe(delivery: Delivery) -> None:
        for observer in observers:
            observer(delivery)

    webhooks = build_webhooks(
        app, read_model.db, auth_token=config.credentials.auth_token, clock=clock,
        settings=webhook_settings or webhook_settings_of(config),
        observe=observe,
    )  # fmt: skip
    return EngineService(config, app, engine, bus, read_model, follower, queries, scheduler, webhooks, observers)


@dataclass
class Service:
    """The whole service of `openrooms serve`: NATS, the engine, its NATS services, the relay,
    the `/v1` REST API, and (roles media/all) `/signaling` with the SFU."""

    config: Config
    engine: EngineService | None
    nats_server: Any  # EmbeddedNatsServer | None
    nats_url: str
    keyring: KeyRing | None = None
    http_port: int = 0

    async def run(self, stopping: asyncio.Event, started: asyncio.Event | None = None) -> None:
        import nats

        from adapters.http.app import build_app, serve_http
        from adapters.http.auth import RateLimit
        from adapters.http.gateway import LocalGateway, NatsGateway
        from adapters.http.rest import RestApi
        from adapters.metrics import Metrics, status_counts
        from adapters.nats.command_service import CommandService, OwnedCommands
        from adapters.nats.engine_peers import EnginePeers
        from adapters.nats.query_service import QueryService
        from adapters.nats.relay import StreamSettings, ensure_stream, lag
        from adapters.relay_process import WAKE_SUBJECT, RelayProcess, SupervisedRelay
        from media.signaling.route import signaling_route

        async def nats_error(exc: Exception) -> None:
            # Lost connections are expected (NATS restarts, outages): one line, no traceback;
            # the client reconnects and the relay catches up from its stored position.
            logger.warning("NATS connection: %s: %s", type(exc).__name__, exc)

        nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.25, error_cb=nats_error)
        engine = self.engine
        metrics = Metrics(counts=(lambda: status_counts(engine.read_model)) if engine is not None else None)
        relay = None

        async def health() -> dict[str, object]:
            report: dict[str, object] = {"nats": "connected" if nc.is_connected else "disconnected"}
            if engine is not None and relay is not None:
                report["relay_lag_events"] = await asyncio.to_thread(lag, engine.app, engine.read_model)
            report["status"] = "ok" if nc.is_connected else "degraded"
            return report

        rest = RestApi() if self.config.role in ("http", "all") else None
        limit = self.config.rate_limit
        signaling = build_signaling(self.config, nc) if self.config.role in ("media", "all") else None
        if signaling is not None:
            metrics.watch_media(signaling.stats)
        app = build_app(
            metrics=metrics, health=health, rest=rest,
            authenticate=self.keyring.check_basic if self.keyring is not None else None,
            rate_limit=RateLimit(limit) if limit else None,
            routes=[signaling_route(signaling.handle), *demo_routes(self.config)] if signaling is not None else [],
        )  # fmt: skip
        host, _, port = self.config.http.rpartition(":")
        host = host or "127.0.0.1"
        engine_stopping = asyncio.Event()
        http = None
        server = self.nats_server
        keeping_nats = None
        if server is not None:  # the bundled one: started again if it dies

            async def start_nats() -> None:
                await asyncio.to_thread(server.start)

            restarted = metrics.nats_server_restarts.inc
            keeping_nats = asyncio.create_task(
                keep_running("nats-server", lambda: server.pid, server.wait, start_nats, on_restart=restarted)
            )
        try:
            if signaling is not None:
                await signaling.start()
            http = await serve_http(app, host, int(port), access_log=self.config.access_log)
            self.http_port = int(http.addresses[0][1])
            base = self.config.public_url or f"http://{host}:{self.http_port}"
            if engine is None:
                if rest is not None:
                    rest.attach(NatsGateway(nc), base)
                if started is not None:
                    started.set()
                await stopping.wait()
                if signaling is not None:
                    await signaling.close()
                return
            peers = EnginePeers(nc)
            commands = CommandService(
                nc,
                engine.bus,
                engine.fresh_queries,
                base,
                ready=engine.read_your_writes,
                recent=engine.recent,
                observe=metrics.observe_command,
                peers=peers,
            )
            owned = OwnedCommands(nc, commands, peers.subject)
            tokens = TokenVerifier(self.keyring, self.config.credentials.account_sid) if self.keyring else None

            async def read_your_writes() -> None:  # other engines' writes too, while there are others
                await engine.read_your_writes(log_end=len(peers.registry.alive_ids()) > 1)

            queries = QueryService(
                nc, engine.fresh_queries, base, ready=read_your_writes, tokens=tokens,
                inline=engine.read_model.db.kind == "sqlite",
            )  # fmt: skip
            if rest is not None:
                rest.attach(LocalGateway(commands, queries), base)
            settings = StreamSettings(
                replicas=self.config.stream_replicas,
                retention=self.config.stream_retention,
                max_age_seconds=self.config.stream_max_age_seconds,
            )
            metrics.relay_lag_events.set_function(lambda: lag(engine.app, engine.read_model))
            engine.webhook_observers.append(metrics.observe_webhook)
            metrics.webhook_pending.set_function(engine.webhooks.pending)
            metrics.webhook_lag_events.set_function(engine.webhooks.lag)
            metrics.read_model_lag_events.set_function(
                lambda: max(0, (engine.app.recorder.max_notification_id() or 0) - engine.read_model.position())
            )
            await ensure_stream(nc.jetstream(), settings)
            store_url, account_sid = self.config.store_url, self.config.credentials.account_sid
            relay = SupervisedRelay(
                lambda channel: RelayProcess.start(store_url, self.nats_url, settings, account_sid, channel),
                on_restart=metrics.relay_restarts.inc,
            )
            engine.follow_elsewhere()  # the relay process follows the log into the read model
            await nc.subscribe(f"{relay.channel}.acked", cb=observe_relay_ack(metrics.relay_ack_seconds.observe))
            committed = asyncio.Event()
            engine.bus.after_batch.append(committed.set)
            async with asyncio.TaskGroup() as group:
                engine_task = group.create_task(engine.run(engine_stopping))
                wake_task = group.create_task(wake_relay(nc, WAKE_SUBJECT, committed))
                watch_task = group.create_task(relay.watch())
                await peers.start()
                await owned.start()
                await commands.start()
                await queries.start()
                logger.info("serving commands and queries on %s", self.nats_url)
                if started is not None:
                    started.set()
                await stopping.wait()
                if signaling is not None:
                    await signaling.close()  # sockets closed with 1001, PeerConnections closed
                await http.cleanup()  # no new REST requests; those in flight finish
                http = None
                await commands.stop()  # no new commands; those in flight finish
                await peers.stop()  # the others take its rooms over
                await owned.stop()  # after finishing what they forwarded meanwhile
                await queries.stop()
                engine_stopping.set()
                await engine_task
                await cancel_and_wait([wake_task, watch_task])
                await asyncio.to_thread(relay.stop)  # it publishes what the last batches committed
                relay = None
        finally:
            if keeping_nats is not None:  # it would start the server again as it stops
                await cancel_and_wait([keeping_nats])
            if http is not None:
                await http.cleanup()
            try:
                if nc.is_connected:
                    await nc.drain()
                else:  # NATS is down: drain() would raise; nothing can be flushed anyway
                    await nc.close()
            except (OSError, nats.errors.Error) as exc:  # the connection died while closing
                logger.warning("closing the NATS connection failed: %s", exc)
            if relay is not None:  # the engine failed: stop its relay all the same
                await asyncio.to_thread(relay.stop)
            # Store reads still running on pool threads (a cancelled scheduler pass, say) must end
            # before the stores close under them.
            await asyncio.get_running_loop().shutdown_default_executor()
            if self.engine is not None:
                self.engine.close()
            if self.keyring is not None:
                self.keyring.close()
            if self.nats_server is not None:
                self.nats_server.stop()


async def wake_relay(nc: Any, subject: str, committed: asyncio.Event) -> None:
    """Tell the relay process about commits: one message per batch at most and per pacing
    interval at most (adapters/pacing.py), none when idle."""
    pacer = Pacer()
    while True:
        await committed.wait()
        await pacer.wait()
        committed.clear()
        await nc.publish(subject, b"")


def observe_relay_ack(observe: Callable[[float], None]) -> Callable[[Any], Any]:
    """The relay process's ack timings, into this process's metrics."""

    async def on_message(msg: Any) -> None:
        observe(float(msg.data))

    return on_message


def build_service(config: Config) -> Service:
    from adapters.nats.server import EmbeddedNatsServer, write_url

    server = None
    url = config.nats_url
    if url is None:
        server = EmbeddedNatsServer(config.state_dir / "nats")
        server.start()
        url = server.url
        write_url(config.state_dir, url)
    engine = build_engine_service(config) if config.role in ("engine", "all") else None
    keyring = build_keyring(config) if config.role != "media" else None
    return Service(config, engine, server, url, keyring)


def build_signaling(config: Config, nc: Any) -> MediaPlane:
    """The media role: `/signaling` sessions and the in-process SFU, talking to the engine over `nc`,
    registered as a media worker (rooms placed on it; others' rooms bridged to their workers)."""
    from media.session.engine_link import EngineLink
    from media.session.ice_hosts import use_ice_host_addresses
    from media.session.signaling_service import SignalingService
    from media.worker.plane import MediaPlane
    from media.worker.registry import new_worker_id

    use_ice_host_addresses(config.media_ice_hosts)
    worker_id = new_worker_id()
    service = SignalingService(EngineLink(nc), ice_servers=config.ice_server_settings(), worker_id=worker_id)
    return MediaPlane(nc, service, worker_id)


def demo_routes(config: Config) -> list[RouteDef]:
    """Beside `/signaling`: the demo page at `/` and its SDK bundle, and with `--dev` `POST /dev/token`."""
    from adapters.http.demo_page import demo_page_routes
    from adapters.http.dev_token import dev_token_route

    routes = demo_page_routes(config.sdk_dir, dev=config.dev)
    if config.dev:
        logger.warning(
            "--dev is on: POST /dev/token gives an access token for any identity and room to anyone who reaches "
            "the HTTP port (%s); use it only where nobody else can",
            config.http,
        )
        routes.append(dev_token_route(config.credentials, now=time.time))
    return routes


def webhook_settings_of(config: Config) -> WebhookSettings:
    return WebhookSettings(
        max_in_flight=config.webhook_max_in_flight,
        request_timeout=config.webhook_timeout_seconds,
        first_retry_delay=config.webhook_retry_min_seconds,
        max_retry_delay=config.webhook_retry_max_seconds,
        give_up_after=config.webhook_give_up_seconds,
    )


def build_keyring(config: Config) -> KeyRing:
    """Credentials for `/v1`: the configured account and API key, and the keys `openrooms keys` made."""
    keys = ApiKeys(Database.from_url(parse_store_url(config.store_url).read_model_url()))
    return KeyRing(config.credentials, keys, clock=time.monotonic)
