"""The demo page at `/`: joins a room from a browser with camera and microphone via twilio-video.

    GET /                          the page (adapters/http/demo/index.html, notices filled in)
    GET /demo/demo.js, demo.css    its script and style
    GET /sdk/twilio-video.min.js   the SDK bundle, read from the configured SDK directory

The SDK is never part of openrooms: the operator installs the pinned npm package (the default
SDK directory is where `npm install twilio-video@2.36.0 --prefix <state dir>/sdk` puts it) or
points `--sdk-dir` at any `node_modules/twilio-video/dist`. While the bundle is missing, the
page says how to get it and `/sdk/...` answers 404. Tokens come from `POST /dev/token` when the
server runs with `--dev` (adapters.http.dev_token), else from the app's own server (pasted).
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Final

from aiohttp import web

ASSETS: Final = Path(__file__).resolve().parent / "demo"
SDK_FILE: Final = "twilio-video.min.js"
SDK_VERSION: Final = "2.36.0"
"""The version the browser tests cover (docs/clients.md); the page works with what is installed."""
_ASSET_TYPES: Final = {"demo.js": "text/javascript", "demo.css": "text/css"}


def sdk_install_hint(sdk_dir: Path) -> str:
    """The npm command that puts the SDK bundle into `sdk_dir` (a `.../node_modules/twilio-video/dist`)."""
    if sdk_dir.parts[-3:] == ("node_modules", "twilio-video", "dist"):
        return f"npm install twilio-video@{SDK_VERSION} --prefix {sdk_dir.parents[2]}"
    return f"npm install twilio-video@{SDK_VERSION} --prefix DIR, then --sdk-dir DIR/node_modules/twilio-video/dist"


def _sdk_notice(sdk_dir: Path | None) -> str:
    if sdk_dir is not None and (sdk_dir / SDK_FILE).is_file():
        return ""
    where = f"{sdk_dir}" if sdk_dir is not None else "(no SDK directory configured)"
    hint = sdk_install_hint(sdk_dir) if sdk_dir is not None else sdk_install_hint(Path("DIR"))
    return (
        '<p class="notice" id="sdk-missing">The twilio-video SDK is not installed: this server serves '
        f"<code>/sdk/{SDK_FILE}</code> from <code>{html.escape(where)}</code>, which has no {SDK_FILE}. "
        f"Run <code>{html.escape(hint)}</code> on the server (or start it with <code>--sdk-dir</code> / "
        "<code>OPENROOMS_SDK_DIR</code> set to a <code>node_modules/twilio-video/dist</code> directory), "
        "then reload this page.</p>"
    )


def _dev_notice(dev: bool) -> str:
    if dev:
        return (
            '<p class="notice" id="dev-on">Development mode (<code>--dev true</code>): this server gives an '
            "access token for any identity and room to whoever reaches it. Never expose it.</p>"
        )
    return (
        '<p class="notice" id="dev-off">Tokens come from your app\'s own server: this server runs without '
        "<code>--dev</code>, so it mints none for browsers. Paste an access token (from your app, or "
        "<code>openrooms token --identity NAME --room ROOM</code>) or start the server with "
        "<code>--dev true</code> on your own machine.</p>"
    )


def demo_page_routes(sdk_dir: Path | None, *, dev: bool) -> list[web.RouteDef]:
    """`/`, its assets and `/sdk/twilio-video.min.js`; `dev` says whether `POST /dev/token` exists."""
    page = Template((ASSETS / "index.html").read_text())

    async def index(_: web.Request) -> web.Response:
        body = page.substitute(
            dev="true" if dev else "false",
            sdk_notice=_sdk_notice(sdk_dir),  # looked up per request: an install shows on reload
            dev_notice=_dev_notice(dev),
            token_placeholder="optional with --dev" if dev else "from your app's server",
        )
        return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-cache"})

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _ASSET_TYPES:
            raise web.HTTPNotFound()
        return web.Response(text=(ASSETS / name).read_text(), content_type=_ASSET_TYPES[name])

    async def sdk(_: web.Request) -> web.FileResponse:
        path = sdk_dir / SDK_FILE if sdk_dir is not None else None
        if path is None or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    return [
        web.get("/", index),
        web.get("/demo/{name}", asset),
        web.get(f"/sdk/{SDK_FILE}", sdk),
    ]
