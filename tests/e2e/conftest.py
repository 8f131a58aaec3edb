"""A running `openrooms serve` shared by a test module, and the client an app would use on it.

* `running_service` (module): `openrooms serve` in a temporary state dir (its own bundled
  nats-server, SQLite store, generated credentials), stopped with SIGTERM at the end; its stderr
  must hold no traceback. `start` (tests/conftest.py) gives tests their own services.
* `twilio_client` (function): the official `twilio` helper library pointed at it the way
  docs/migration.md tells apps to (`client.video.base_url`), authenticated with the API key.
* `chromium` (session): Debian's Chromium, headless, driven by Playwright, with fake camera and
  microphone; `sdk_page` (function): a page that has loaded the unmodified `twilio-video` SDK
  from npm (tests/browser/package.json). What is missing is installed first (`apt-get install
  chromium`, `npm ci`); when that is impossible the tests error with the reason, never skip.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twilio.rest import Client

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
SDK = BROWSER_DIR / "node_modules" / "twilio-video" / "dist" / "twilio-video.min.js"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    # WebRTC on loopback with fake devices: no prompts, no mDNS names, 127.0.0.1 candidates.
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
]  # fmt: skip
INSTALL_TIMEOUT = 900


@pytest.fixture(scope="module")
def running_service(start: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    service = start(tmp_path_factory.mktemp("service") / "state")
    yield service
    assert service.process.stop() == 0, service.process.stderr()
    assert "Traceback" not in service.process.stderr(), service.process.stderr()


@pytest.fixture
def twilio_client(running_service: Any) -> Client:
    client: Client = running_service.client()
    return client


def _install(what: str, command: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise RuntimeError(f"cannot install {what} with {' '.join(command)}: {exc}\n{detail[-2000:]}") from exc


def ensure_browser_deps() -> None:
    """Debian's Chromium and the pinned twilio-video package, installed when missing."""
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        if apt is None:
            raise RuntimeError("the browser tests need Debian's chromium package (/usr/bin/chromium)")
        _install("the package lists", [apt, "update", "-q"])
        _install("chromium", [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"])
    if not SDK.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("the browser tests need npm to install twilio-video (tests/browser/package.json)")
        _install("twilio-video", [npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def sdk_origin() -> Iterator[str]:
    """An http://127.0.0.1 origin (a secure context for getUserMedia) serving tests/browser/."""
    ensure_browser_deps()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(BROWSER_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chromium(sdk_origin: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def sdk_page(chromium: Any, sdk_origin: str) -> Iterator[Any]:
    """A fresh browser context and page with `window.Twilio.Video` loaded from npm's twilio-video."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{sdk_origin}/sdk.html")
    page.wait_for_function("window.Twilio && window.Twilio.Video")
    yield page
    context.close()
