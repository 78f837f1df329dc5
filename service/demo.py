"""The dev stack's `/demo/`: the example web app's prebuilt files, served on the API's origin (never in the image)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/demo"
# Built by `make web` from examples/web; outside service/, so the production image (which copies only service/)
# never holds it, and the dev stack serves it only when someone built it.
BUILT_APP = Path(__file__).resolve().parent.parent / "examples" / "web" / "dist"

# The app loads nothing from elsewhere and talks only to this origin; the API's own answers keep their headers.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_built(directory: Path = BUILT_APP) -> bool:
    return (directory / "index.html").is_file()


def demo_app(directory: Path, *, token: str | None) -> Litestar:
    """The built files under /demo/, and /demo/config.json handing the page the dev token (the dev stack only)."""

    @get(f"{PREFIX}/config.json", sync_to_thread=False, include_in_schema=False)
    def config() -> dict[str, Any]:
        return {"token": token}

    files = create_static_files_router(path=PREFIX, directories=[directory], html_mode=True, name="demo")
    # logging_config=None: the service configured logging already; Litestar must not replace it.
    return Litestar(route_handlers=[config, files], openapi_config=None, logging_config=None, debug=False)


def mounted(api: ASGIApp, *, token: str | None, directory: Path = BUILT_APP) -> ASGIApp:
    """The API with the demo beside it when the app was built; the API alone otherwise."""
    return with_demo(api, demo_app(directory, token=token)) if is_built(directory) else api


def with_demo(api: ASGIApp, demo: ASGIApp) -> ASGIApp:
    """Send /demo and /demo/* to the demo app, everything else (lifespan included) to the API untouched."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(f"{PREFIX}/")):
            await api(scope, receive, send)
        elif path == PREFIX:
            # The page's relative URLs (app.js, config.json) resolve under the trailing slash only.
            await send(
                {"type": "http.response.start", "status": 308, "headers": [(b"location", f"{PREFIX}/".encode())]}
            )
            await send({"type": "http.response.body", "body": b""})
        else:

            async def with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    names = {name for name, _ in _HEADERS}
                    kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
                    message = {**message, "headers": [*kept, *_HEADERS]}
                await send(message)

            await demo(scope, receive, with_headers)

    return dispatch
