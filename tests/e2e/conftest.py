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

import concurrent.futures
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
MEDIA_ENV = {"OPENROOMS_MEDIA_ICE_HOSTS": "127.0.0.1"}
"""The SFU offers 127.0.0.1 as its ICE candidate: Chromium (with the flags above) reaches it on loopback."""


@pytest.fixture(scope="module")
def running_service(start: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    service = start(tmp_path_factory.mktemp("service") / "state", env=MEDIA_ENV)
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


class InBrowserThread:
    """A Playwright object used from any thread: every access runs on the one thread that owns
    Playwright. Its sync API keeps an event loop running on the thread that started it, which
    would break `asyncio.run` and pytest-asyncio in every later test if that were the main one."""

    def __init__(self, executor: concurrent.futures.ThreadPoolExecutor, target: Any) -> None:
        self._executor = executor
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = self._executor.submit(getattr, self._target, name).result()
        if not callable(value):
            return self._wrap(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(self._executor.submit(value, *args, **kwargs).result())

        return call

    def _wrap(self, value: Any) -> Any:
        return InBrowserThread(self._executor, value) if type(value).__module__.startswith("playwright") else value


@pytest.fixture(scope="session")
def chromium(sdk_origin: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
    playwright = executor.submit(lambda: sync_playwright().start()).result()
    browser = executor.submit(
        playwright.chromium.launch, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    ).result()
    yield InBrowserThread(executor, browser)
    executor.submit(browser.close).result()
    executor.submit(playwright.stop).result()
    executor.shutdown(wait=True)


@pytest.fixture
def sdk_page(chromium: Any, sdk_origin: str) -> Iterator[Any]:
    """A fresh browser context and page with `window.Twilio.Video` loaded from npm's twilio-video."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{sdk_origin}/sdk.html")
    page.wait_for_function("window.Twilio && window.Twilio.Video")
    yield page
    context.close()


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1: Python clients in this process gather exactly that (the server does
    via `MEDIA_ENV`), so they reach the server and each other on loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
def sdk_pages(chromium: Any, sdk_origin: str) -> Iterator[Callable[..., Any]]:
    """`sdk_pages(init_script=None)`: another page with the SDK loaded, each in a browser context of its own
    (own fake camera and microphone); all closed at the end of the test."""
    contexts: list[Any] = []

    def _open(init_script: str | None = None) -> Any:
        context = chromium.new_context()
        contexts.append(context)
        if init_script is not None:
            context.add_init_script(script=init_script)
        page = context.new_page()
        page.goto(f"{sdk_origin}/sdk.html")
        page.wait_for_function("window.Twilio && window.Twilio.Video")
        return page

    yield _open
    for context in contexts:
        context.close()
