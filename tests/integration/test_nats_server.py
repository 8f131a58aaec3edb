"""The bundled nats-server's process (adapters/nats/server.py), real nats-server binaries."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from adapters.nats.server import EmbeddedNatsServer

TIMEOUT = 10.0
"""Never reached when it works."""


def accepts(server: EmbeddedNatsServer) -> bool:
    try:
        socket.create_connection((server.host, server.port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_nats_server_an_earlier_run_left_on_the_jetstream_dir_is_stopped_by_the_next_start_there(
    tmp_path: Path,
) -> None:
    left = EmbeddedNatsServer(tmp_path / "nats")
    left.start()  # then its serve is killed with -9: nobody stops it
    assert left.process is not None
    try:
        again = EmbeddedNatsServer(tmp_path / "nats")
        again.start()
        try:
            left.process.wait(TIMEOUT)  # stopped (a TimeoutExpired here if not)
            assert not accepts(left) and accepts(again)
            assert again.pid_file.read_text() == f"{again.pid}\n"
        finally:
            again.stop()
    finally:
        left.stop()
    assert not again.pid_file.exists(), "a clean stop leaves no pid file"


def test_a_process_in_the_pid_file_that_is_not_a_nats_server_on_that_dir_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the pid, reused
    elsewhere = EmbeddedNatsServer(tmp_path / "elsewhere")  # a nats-server, but on another dir
    elsewhere.start()
    server = EmbeddedNatsServer(tmp_path / "nats")
    server.store_dir.mkdir()
    try:
        for pid in (other.pid, elsewhere.pid):
            server.pid_file.write_text(f"{pid}\n")
            server.start()
            server.stop()
        assert other.poll() is None and accepts(elsewhere)
    finally:
        elsewhere.stop()
        other.kill()
        other.wait()
