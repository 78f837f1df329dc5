"""The API docs page with Swagger UI served by this service (packaged assets), so it renders with no network."""

from __future__ import annotations

from importlib.metadata import version

from litestar import Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

DOCS_PATH = "/schema"
ASSETS_PATH = f"{DOCS_PATH}/static"
# The package's version is the Swagger UI release it ships (Apache-2.0, like Swagger UI itself).
SWAGGER_UI_VERSION = version("swagger-ui-bundle-v2")


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at /schema/swagger, its scripts, styles and icon relative to the page (works behind a prefix)."""
    assets = "static"  # relative to /schema/swagger, so /schema/static/...
    return SwaggerRenderPlugin(
        version=SWAGGER_UI_VERSION,
        js_url=f"{assets}/swagger-ui-bundle.js",
        css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
    )


def assets_router() -> Router:
    return create_static_files_router(path=ASSETS_PATH, directories=[swagger_ui_path], name="docs-assets")
