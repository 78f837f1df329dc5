"""The example web app: served at /demo/ by the dev stack only, and never part of the production image."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import demo
from tests.conftest import ROOT

SERVICE = ROOT / "service"


async def api(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in for the service: answers every request with 204 and says so in a header."""
    await send({"type": "http.response.start", "status": 204, "headers": [(b"x-answered-by", b"api")]})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>Virtual card</title>")
    (tmp_path / "app.js").write_text("console.log('app')")
    return tmp_path


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_the_dev_stack_serves_the_built_app_and_its_token_under_demo(built: Path) -> None:
    async with client(demo.mounted(api, token="dev.token.value", directory=built)) as http:
        page = await http.get("/demo/")
        assert page.status_code == 200
        assert "<title>Virtual card</title>" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert (await http.get("/demo/app.js")).text == "console.log('app')"
        assert (await http.get("/demo/config.json")).json() == {"token": "dev.token.value"}
        bare = await http.get("/demo")
        assert (bare.status_code, bare.headers["location"]) == (308, "/demo/")
        # Everything else is the API's, untouched.
        for path in ("/v1/card-onboarding", "/demonstration", "/"):
            assert (await http.get(path)).headers.get("x-answered-by") == "api"


async def test_without_a_build_the_dev_stack_serves_the_api_alone(tmp_path: Path) -> None:
    assert demo.mounted(api, token="t", directory=tmp_path) is api


def _imports_demo(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name == "service.demo" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.module == "service.demo" or (
            node.module == "service" and any(alias.name == "demo" for alias in node.names)
        )
    return False


def test_only_the_dev_stack_imports_the_demo_module() -> None:
    importers = sorted(
        path.relative_to(ROOT).as_posix()
        for path in SERVICE.rglob("*.py")
        if any(_imports_demo(node) for node in ast.walk(ast.parse(path.read_text(), str(path))))
    )
    assert importers == ["service/devstack.py"]


def _ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore: the last matching rule wins; a rule matches a path or any directory above it."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_the_built_app_is_outside_the_image_build_context_and_every_copy() -> None:
    built = demo.BUILT_APP.relative_to(ROOT).as_posix()
    assert not demo.BUILT_APP.is_relative_to(SERVICE)
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    shipped = [f.relative_to(ROOT).as_posix() for f in demo.BUILT_APP.rglob("*") if f.is_file()]
    for path in [f"{built}/index.html", f"{built}/app.js", "examples/web/src/main.ts", *shipped]:
        assert _ignored(path, rules), path
    assert not _ignored("service/app.py", rules)
    copies = [
        line.split()[1:-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    assert {source for sources in copies for source in sources} == {"pyproject.toml", "uv.lock", "service/"}
