"""The log's followers in a process of their own, started by `openrooms serve` beside its engine:
the event relay (adapters/nats/relay.py) and the read-model follower.

They need only the store and NATS. In the engine's process the relay's JetStream publishes and
acks cost ~160 µs of interpreter lock per room created, and the read-model follower ~35 µs per
event, taken from HTTP, deciding and writing; in their own process they run on the other core.
(The engine still applies events to the read model itself while a reader waits for its own
writes.) The two processes talk over NATS, on subjects of their own:

    engines → relays `rooms.relay.wake`            after every committed batch (empty body)
    relay  → engine  `rooms.relay.<id>.acked`      seconds from reading a batch to its last ack

With several engines on one store, each runs a relay, but only the one holding the lease
(adapters/nats/lease.py) publishes and follows; the others take over when it stops or dies.

The relay polls every second as well, so a lost wake-up only delays it. SIGTERM (sent once the
engine has stopped) makes it publish everything committed so far and exit; Ctrl-C goes to
the engine, which stops it the same way. It exits by itself if its engine process dies; if it
dies itself, the engine starts another (`SupervisedRelay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from multiprocessing.process import BaseProcess
from typing import Any

from nats.aio.msg import Msg

from adapters.children import keep_running
from adapters.nats.lease import Lease
from adapters.nats.relay import EventRelay, StreamSettings
from adapters.pacing import Pacer
from adapters.store.read_model import FOLLOW_STEP, Follower
from adapters.tasks import cancel_and_wait

logger = logging.getLogger(__name__)
STOP_SECONDS = 30.0
"""How long the engine waits for the relay's last publishes before killing it."""
FOLLOW_INTERVAL_S = 0.025
"""The read-model follower's pacing here: one pass per 25 ms at most while commits keep coming
(the relay's is 5 ms). Nobody waits on it: a reader that must see its own writes has its engine
apply them, and each pass costs a read of the log and a transaction whatever it finds."""
POLL_SECONDS = 1.0
"""The read-model follower also looks this often without a wake-up (commits of other engines)."""
LATE_CONNECT_SECONDS = 5.0
"""Stopped before its NATS connection was up, the relay waits this long for it to publish the rest."""


WAKE_SUBJECT = "rooms.relay.wake"
"""Every engine publishes here after each committed batch; every relay listens (the one holding
the lease publishes, whichever engine committed)."""


def new_channel() -> str:
    return f"rooms.relay.{uuid.uuid4().hex}"


class RelayProcess:
    def __init__(self, process: BaseProcess, channel: str, ready: Any) -> None:
        self.process = process
        self.channel = channel
        self.ready = ready
        """Set by the process once SIGTERM makes it flush (before that, SIGTERM would just kill it)."""

    @classmethod
    def start(
        cls, store_url: str, nats_url: str, settings: StreamSettings, account_sid: str, channel: str
    ) -> RelayProcess:
        level = logging.getLogger().getEffectiveLevel()
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        args = (store_url, nats_url, settings, account_sid, channel, level, ready, os.getpid())
        process = context.Process(target=main, args=args, name=PROCESS_NAME, daemon=True)
        # Ctrl-C reaches the whole process group; the engine stops the relay itself, after its last
        # commit. So the relay starts with SIGINT blocked (inherited), until it ignores it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        logger.info("relay process %d started", process.pid)
        return cls(process, channel, ready)

    def stop(self) -> int | None:
        """SIGTERM, then wait for it to publish what is committed (blocking); its exit code."""
        self.ready.wait(STOP_SECONDS)
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            logger.warning("relay process %d did not stop in %.0f s; killing it", self.process.pid, STOP_SECONDS)
            self.process.kill()
            self.process.join()
        return self.process.exitcode


class SupervisedRelay:
    """The relay process, started again whenever it exits before `stop()` (adapters/children.py).
    Until then the stream and the read model would fall behind; the next process resumes from
    the positions they stored, under the same channel: its acks come where the first one's did,
    and it takes the lease back at once (adapters/nats/lease.py)."""

    def __init__(self, start: Callable[[str], RelayProcess], *, on_restart: Callable[[], None] | None = None) -> None:
        self.channel = new_channel()
        self._start = start
        self._on_restart = on_restart
        self.current = start(self.channel)

    async def watch(self) -> None:
        """Start a new relay process each time the current one exits; until cancelled."""

        def wait() -> int | None:
            self.current.process.join()
            return self.current.process.exitcode

        async def start() -> None:
            self.current = self._start(self.channel)

        await keep_running(
            "relay process", lambda: self.current.process.pid or 0, wait, start, on_restart=self._on_restart
        )

    def stop(self) -> int | None:
        """Stop the current relay process (blocking; cancel `watch()` first); its exit code."""
        return self.current.stop()


PROCESS_NAME = "openrooms-relay"
"""The relay process's name in /proc/<pid>/comm, as `ps -e`, `top` and `pgrep` show it."""
_PR_SET_NAME = 15


def _name_process(name: str) -> None:
    """Set this process's name (Linux; elsewhere, or without libc's prctl, it keeps its own)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def main(
    store_url: str,
    nats_url: str,
    settings: StreamSettings,
    account_sid: str,
    channel: str,
    log_level: int,
    ready: Any,
    engine_pid: int,
) -> None:
    """The relay process's entry point (multiprocessing target)."""
    _name_process(PROCESS_NAME)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle; it stops us after
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    asyncio.run(_relay(store_url, nats_url, settings, account_sid, channel, ready, engine_pid))


async def _relay(
    store_url: str,
    nats_url: str,
    settings: StreamSettings,
    account_sid: str,
    channel: str,
    ready: Any,
    engine_pid: int,
) -> None:
    import nats

    from adapters.bootstrap import open_application, open_read_model

    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    ready.set()
    stop = asyncio.create_task(_stop_requested(stopping, engine_pid))  # not getppid(): it may be gone already
    connecting = asyncio.create_task(
        nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.25, error_cb=_nats_error)
    )
    await asyncio.wait([stop, connecting], return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():  # stopped while connecting: NATS gets a few seconds more, for the flush
        await asyncio.wait([connecting], timeout=LATE_CONNECT_SECONDS)
    if not connecting.done():  # NATS is down: nothing can be published; the next start relays the rest
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        return
    nc = connecting.result()
    app = open_application(store_url)
    read_model = open_read_model(store_url)
    lease = Lease(nc.jetstream(), channel)
    relay = EventRelay(app, nc, read_model, settings, observe_ack=_report_acks(nc, f"{channel}.acked"), lease=lease)
    follower = Follower(app, read_model, account_sid)
    follow = asyncio.Event()
    try:
        await nc.subscribe(WAKE_SUBJECT, cb=_waker(relay.wake.set, follow.set))
        running = [asyncio.create_task(relay.run()), asyncio.create_task(_follow(follower, follow, relay))]
        await stop
        await cancel_and_wait(running)
        try:
            # What the engine's last batches committed, unless another relay publishes.
            while nc.is_connected and await relay.leads() and await relay.relay_once():
                pass
            await lease.release()
        except Exception as exc:  # NATS went away: the next start relays from the stored position
            logger.warning("relay flush at shutdown failed (%s); the next start relays the rest", exc)
    finally:
        with contextlib.suppress(OSError, nats.errors.Error):  # the connection died while closing
            await (nc.drain() if nc.is_connected else nc.close())
        read_model.db.close()
        app.close()


def _report_acks(nc: Any, subject: str) -> Callable[[float], None]:
    sending: set[asyncio.Task[None]] = set()

    def observe_ack(seconds: float) -> None:
        task = asyncio.create_task(nc.publish(subject, str(seconds).encode()))
        sending.add(task)
        task.add_done_callback(sending.discard)

    return observe_ack


def _waker(*wakes: Callable[[], None]) -> Callable[[Msg], Awaitable[None]]:
    async def on_message(_: Msg) -> None:
        for wake in wakes:
            wake()

    return on_message


async def _follow(follower: Follower, wake: asyncio.Event, relay: EventRelay) -> None:
    """The read model, from the log: at most one step (FOLLOW_STEP events) per wake-up and
    pacing interval, while this process's relay publishes (holds the lease)."""
    pacer = Pacer(FOLLOW_INTERVAL_S)
    failures = 0
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_SECONDS):
                await wake.wait()
        wake.clear()
        if not relay.leading:
            continue
        await pacer.wait()
        try:
            _, more = follower.step(FOLLOW_STEP)
        except Exception as exc:  # the store is unavailable: try again
            failures += 1
            logger.warning("read-model follower paused (%s)", exc)
            await asyncio.sleep(min(5.0, 0.1 * 2**failures))
            wake.set()
            continue
        failures = 0
        if more:
            wake.set()


async def _stop_requested(stopping: asyncio.Event, parent: int) -> None:
    """Until SIGTERM, or until the engine process is gone (then nobody else would stop us)."""
    while os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stopping.wait()
                return
    logger.warning("the engine process %d is gone; the relay stops", parent)


async def _nats_error(exc: Exception) -> None:
    logger.warning("relay's NATS connection: %s: %s", type(exc).__name__, exc)
