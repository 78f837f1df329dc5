"""The docs page works offline: every script, style and icon it references is served by the service itself."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from service.http.docs import SWAGGER_UI_VERSION
from tests.conftest import Harness

BASE = "http://testserver.local"
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class References(HTMLParser):
    """The URLs a browser would fetch to render the page: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img") and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))


async def test_the_docs_page_loads_every_asset_from_the_service_itself(bff: Harness) -> None:
    page = "/schema/swagger"  # the only UI enabled; /schema and /schema/openapi.json answer the JSON document
    response = await bff.client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = References()
    parser.feed(response.text)
    assert len(parser.urls) >= 4, parser.urls  # the bundle, the preset, the stylesheet and the icon
    page_url = BASE + page
    for reference in parser.urls:
        url = urljoin(page_url, reference)
        assert urlsplit(url).netloc == urlsplit(BASE).netloc, f"{reference} is fetched from another host"
        asset = await bff.client.get(urlsplit(url).path)
        assert asset.status_code == 200, reference
        expected = next(kind for suffix, kind in CONTENT_TYPES.items() if urlsplit(url).path.endswith(suffix))
        assert expected in asset.headers["content-type"], (reference, asset.headers["content-type"])
        assert len(asset.content) > 100, reference


async def test_the_page_names_no_asset_host(bff: Harness) -> None:
    html = (await bff.client.get("/schema/swagger")).text.lower()
    # (The inline document's examples hold https URLs of their own; no asset host may appear.)
    for host in ("cdn.", "jsdelivr", "unpkg", "googleapis", "redoc.ly"):
        assert host not in html, host


async def test_the_served_swagger_ui_is_the_pinned_release(bff: Harness) -> None:
    bundle = await bff.client.get("/schema/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"' in bundle.text
