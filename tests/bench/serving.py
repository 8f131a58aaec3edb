"""What the benchmarks that start `openrooms serve` as a subprocess share."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def wait_running(process: subprocess.Popen[str], log: Path) -> int:
    """The HTTP port a starting `openrooms serve` printed, once it runs."""
    assert process.stdout is not None
    port = 0
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the server stopped: {log.read_text()[-3000:]}")
        if found := re.search(r"openrooms: HTTP http://\S+?:(\d+)", line):
            port = int(found.group(1))
        if "engine running" in line:
            return port
