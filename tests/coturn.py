"""A real coturn TURN server for tests: Debian's `turnserver`, private to one test run.

    with Coturn(tmp_path / "coturn", secret="s3cret") as turn:
        turn.url                  # "turn:127.0.0.1:<port>?transport=udp"
        turn.log()                # what coturn logged so far

`Coturn` runs `turnserver` with the TURN REST API (`use-auth-secret` + `static-auth-secret`, the
credentials media/session/ice_servers.py hands out) on 127.0.0.1 only: a free listening port, a
relay port range that was free when it started, its SQLite user database, pid file and log in the
given directory, and nothing else of the machine (`-n`: no /etc/turnserver.conf). `start()`
returns once the server answers a STUN Binding request (no fixed sleeps); `stop()` sends SIGTERM
and waits for the exit.

The flags that make two clients on one machine relay to each other: `allow-loopback-peers`
(coturn refuses 127.x.x.x peers by default; it also refuses that flag with the CLI enabled and no
`cli-password`, hence `no-cli`), `relay-ip=127.0.0.1` (relay addresses the other client can
reach), `listening-ip=127.0.0.1`. `no-tls`/`no-dtls` (no certificate needed), `no-rfc5780`
(one address: no NAT-behaviour discovery), `no-multicast-peers`, `fingerprint` (as WebRTC does).

`ensure_coturn()` installs the `coturn` package with apt-get when `turnserver` is missing, as
tests/e2e/conftest.py does for Chromium; when that is impossible the test errors with the reason.
"""

from __future__ import annotations

import random
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType

INSTALL_TIMEOUT = 900
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
RELAY_PORTS = 64
STUN_MAGIC_COOKIE = 0x2112A442
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101


def ensure_coturn() -> str:
    """The path of `turnserver`, installing Debian's coturn package first when it is missing."""
    found = shutil.which("turnserver")
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("the TURN tests need Debian's coturn package (turnserver), and apt-get is missing")
    _install("the package lists", [apt, "update", "-q"])
    _install("coturn", [apt, "install", "-y", "-q", "--no-install-recommends", "coturn"])
    found = shutil.which("turnserver")
    if found is None:
        raise RuntimeError("apt-get installed coturn but turnserver is not on PATH")
    return found


def _install(what: str, command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise RuntimeError(f"cannot install {what} with {' '.join(command)}: {exc}\n{detail[-2000:]}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if _udp_free(host, port):
                return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def free_udp_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """`count` consecutive UDP ports free on `host` now, below the kernel's ephemeral range (so
    other programs' port-0 sockets do not land in it while the test runs)."""
    low, _ = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        first = random.randrange(10_000, low - count)
        if all(_udp_free(host, port) for port in range(first, first + count)):
            return first, first + count - 1
    raise RuntimeError(f"no {count} consecutive free UDP ports on {host} below {low}")


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.bind((host, port))
        except OSError:
            return False
    return True


class Coturn:
    """One `turnserver` process; see the module docstring for its settings."""

    def __init__(
        self,
        directory: Path,
        *,
        secret: str,
        realm: str = "openrooms.test",
        host: str = "127.0.0.1",
        config: str | None = None,
    ) -> None:
        """`config`: a turnserver.conf to run instead of the test settings (`-c` instead of `-n`). It
        must name `listening-ip`/`relay-ip` = `host`, its own secret and realm, and log nowhere else
        (no `syslog`); ports, log, pid file and database are still set here, on the command line,
        which coturn lets override the file."""
        self.directory = directory
        self.secret = secret
        self.realm = realm
        self.host = host
        self.config = config
        self.port = 0
        self.relay_ports = (0, 0)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The TURN URL clients use (UDP, which aioice and browsers try first)."""
        return f"turn:{self.host}:{self.port}?transport=udp"

    @property
    def log_path(self) -> Path:
        return self.directory / "turnserver.log"

    @property
    def output_path(self) -> Path:
        return self.directory / "turnserver.out"

    def log(self) -> str:
        """Everything coturn has logged so far (its log file, then what it printed)."""
        parts = [p.read_text(errors="replace") for p in (self.log_path, self.output_path) if p.exists()]
        return "\n".join(parts)

    def command(self) -> list[str]:
        low, high = self.relay_ports
        private = [
            f"--listening-port={self.port}",
            f"--min-port={low}",
            f"--max-port={high}",
            f"--userdb={self.directory / 'turndb'}",
            f"--pidfile={self.directory / 'turnserver.pid'}",
            f"--log-file={self.log_path}",
            "--simple-log",
            "--verbose",  # a line per session: allocations, refusals, relayed packet counts
            "--no-stdout-log",
        ]
        if self.config is not None:
            config_path = self.directory / "turnserver.conf"
            config_path.write_text(self.config)
            return [ensure_coturn(), "-c", str(config_path), f"--tls-listening-port={free_port(self.host)}", *private]
        return [
            ensure_coturn(),
            "-n",  # no configuration file: only these flags
            f"--listening-ip={self.host}",
            f"--relay-ip={self.host}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            f"--realm={self.realm}",
            "--fingerprint",
            "--allow-loopback-peers",
            "--no-multicast-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-rfc5780",
            *private,
        ]

    def start(self) -> Coturn:
        if self.process is not None:
            raise RuntimeError("coturn is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        self.relay_ports = free_udp_range(RELAY_PORTS, self.host)
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                self.command(), stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory
            )
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_answering(self) -> None:
        """Poll with STUN Binding requests until one is answered (or the process dies)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"turnserver exited with {self.process.returncode} at startup:\n{self.log()}")
                transaction = secrets.token_bytes(12)
                probe.sendto(
                    struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC_COOKIE) + transaction, self.address
                )
                try:
                    answer = probe.recv(2048)
                except (TimeoutError, ConnectionRefusedError):
                    continue  # not listening yet: the receive timeout paces the next probe
                kind, _, cookie = struct.unpack("!HHI", answer[:8])
                if (kind, cookie, answer[8:20]) == (STUN_BINDING_SUCCESS, STUN_MAGIC_COOKIE, transaction):
                    return
        raise RuntimeError(f"turnserver did not answer STUN on {self.address} in {START_TIMEOUT}s:\n{self.log()}")

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def stop(self) -> int | None:
        """SIGTERM, then wait; SIGKILL if it does not exit. Returns the exit code (None: never started)."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        return process.returncode

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
