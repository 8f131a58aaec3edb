"""Prometheus metrics of one process, in a registry of its own (no global registry).

    openrooms_commands_total{command,outcome}   outcome: "ok", a Twilio error code ("53113"), or "error"
    openrooms_command_seconds{command}          from `bus.execute` called to its result
    openrooms_relay_lag_events                  committed but not yet acked by JetStream
    openrooms_relay_ack_seconds                 a relay batch: read from the log → its last JetStream ack
    openrooms_relay_restarts_total              relay processes started again after one exited by itself
    openrooms_nats_server_restarts_total        bundled nats-servers started again after one exited by itself
    openrooms_read_model_lag_events             committed but not yet in the read model
    openrooms_rooms{status}                     read at scrape time from `counts()`
    openrooms_participants{status}              read at scrape time from `counts()`
    openrooms_media_sessions{room_type}         signaling sessions in this process (media role)
    openrooms_media_peer_connections            PeerConnections ending at this process's SFU
    openrooms_media_rtp_packets_received_total  RTP packets the SFU received from publishers

`render()` runs `counts()`, which may query the read model: call it off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from adapters.store.read_model import ReadModel
from adapters.webhooks.delivery import Delivery
from domain.commands import Command
from domain.results import CommandResult
from media.session.stats import MediaStats

NAMESPACE: Final = "openrooms"
COMMAND_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
RELAY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_TABLES: Final = {"rooms": "rm_rooms", "participants": "rm_participants"}
"""The gauges of `openrooms_<name>{status}` and the read-model table each one counts."""
KNOWN_STATUSES: Final = {"rooms": ("in-progress", "completed", "failed"), "participants": ("connected", "disconnected")}
"""Reported as 0 when no row has them, so the series exist from the first scrape."""

Counts = dict[str, dict[str, int]]
Execute = Callable[[Command], Awaitable[CommandResult]]


def command_name(command: Command) -> str:
    """The snake_case name of a command (`create_room`), as on `rooms.cmd.<name>`."""
    return str(type(command).__struct_config__.tag)


def outcome(result: CommandResult) -> str:
    """The `outcome` label: "ok", or the Twilio error code of a refused command as a string."""
    return "ok" if result.ok else str(result.error_code)


class StatusCollector:
    """`openrooms_rooms{status}` and `openrooms_participants{status}`, computed at each scrape."""

    def __init__(self, counts: Callable[[], Counts]) -> None:
        self.counts = counts

    def describe(self) -> Iterable[Metric]:
        """The families without samples, so registering does not call `counts()`."""
        return list(self._families({}))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self.counts()))

    @staticmethod
    def _families(counts: Counts) -> Iterator[Metric]:
        for name in STATUS_TABLES:
            family = GaugeMetricFamily(f"{NAMESPACE}_{name}", f"{name.capitalize()} by status", labels=["status"])
            for status, count in sorted(counts.get(name, {}).items()):
                family.add_metric([status], count)
            yield family


class MediaCollector:
    """The media plane's `openrooms_media_*` series, read from `stats()` at each scrape.

    Scrapes run off the event loop while the loop changes the rooms; `stats()` copies what it
    reads, and a scrape that still races with a change is retried."""

    def __init__(self, stats: Callable[[], MediaStats]) -> None:
        self.stats = stats

    def describe(self) -> Iterable[Metric]:
        return list(self._families(MediaStats({}, 0, 0)))

    def collect(self) -> Iterable[Metric]:
        for _attempt in range(3):
            try:
                stats = self.stats()
            except RuntimeError:  # "dictionary changed size during iteration"
                continue
            return list(self._families(stats))
        return []

    @staticmethod
    def _families(stats: MediaStats) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            f"{NAMESPACE}_media_sessions", "Signaling sessions in this process by room type", labels=["room_type"]
        )
        for room_type, count in sorted(stats.sessions_by_room_type.items()):
            sessions.add_metric([room_type], count)
        yield sessions
        yield GaugeMetricFamily(
            f"{NAMESPACE}_media_peer_connections",
            "PeerConnections ending at this process's SFU",
            value=stats.peer_connections,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_media_rtp_packets_received",
            "RTP packets this process's SFU received from publishers",
            value=stats.rtp_packets_received,
        )


class Metrics:
    def __init__(self, counts: Callable[[], Counts] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "commands",
            "Commands executed, by command and outcome",
            ["command", "outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "command_seconds",
            "Time from a command's submission to its committed result",
            ["command"],
            namespace=NAMESPACE,
            buckets=COMMAND_BUCKETS,
            registry=self.registry,
        )
        self._command_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.relay_lag_events = Gauge(
            "relay_lag_events",
            "Events committed but not yet acked by JetStream",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.relay_ack_seconds = Histogram(
            "relay_ack_seconds",
            "Time from the relay reading a batch of events from the log to JetStream acking its last one",
            namespace=NAMESPACE,
            buckets=RELAY_BUCKETS,
            registry=self.registry,
        )
        self.relay_restarts = Counter(
            "relay_restarts",
            "Relay processes started again after one exited by itself",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.nats_server_restarts = Counter(
            "nats_server_restarts",
            "Bundled nats-servers started again after one exited by itself",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.read_model_lag_events = Gauge(
            "read_model_lag_events",
            "Events committed but not yet applied to the read model",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "webhook_deliveries",
            "Status callback attempts by event and outcome",
            ["event", "outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.webhook_pending = Gauge(
            "webhook_pending",
            "Status callbacks in the outbox, not yet delivered or given up",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.webhook_lag_events = Gauge(
            "webhook_lag_events",
            "Events committed but not yet turned into status callbacks",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        if counts is not None:
            self.registry.register(StatusCollector(counts))

    def watch_media(self, stats: Callable[[], MediaStats]) -> None:
        self.registry.register(MediaCollector(stats))

    def observe_webhook(self, delivery: Delivery) -> None:
        self.webhook_deliveries.labels(event=delivery.event, outcome=delivery.outcome).inc()

    def observe_command(self, name: str, seconds: float, outcome: str) -> None:
        children = self._command_children.get((name, outcome))
        if children is None:  # `labels()` costs a lock and a tuple per call: look it up once
            children = (self.commands.labels(command=name, outcome=outcome), self.command_seconds.labels(command=name))
            self._command_children[(name, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def instrument(self, execute: Execute) -> Execute:
        """`execute` (e.g. `CommandBus.execute`) that also counts and times every command."""

        async def instrumented(command: Command) -> CommandResult:
            started = time.perf_counter()
            name = command_name(command)
            try:
                result = await execute(command)
            except Exception:
                self.observe_command(name, time.perf_counter() - started, "error")
                raise
            self.observe_command(name, time.perf_counter() - started, outcome(result))
            return result

        return instrumented

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition (body, content type). Blocking: runs `counts()`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def status_counts(read_model: ReadModel) -> Counts:
    """{"rooms": {"in-progress": 3, ...}, "participants": {"connected": 4, ...}} from the read model."""
    out: Counts = {}
    for name, table in STATUS_TABLES.items():
        rows = read_model.db.query(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
        out[name] = dict.fromkeys(KNOWN_STATUSES[name], 0) | {str(status): int(count) for status, count in rows}
    return out
