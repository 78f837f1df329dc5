"""Kubernetes probes: what the kubelet sees, with no token, its own Host header, and a dead Redis."""

from __future__ import annotations

import httpx
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import load_settings
from tests.conftest import JWT_SECRET, free_port

# The kubelet probes the pod IP and port; that is the Host header it sends.
KUBELET = {"Host": "10.244.1.17:8000", "User-Agent": "kube-probe/1.31"}


def _settings(redis_url: str):  # type: ignore[no-untyped-def]
    return load_settings(
        {"AUTH_JWT_SECRET": JWT_SECRET, "YATIVO_BASE_URL": "http://emulator/api/v1", "REDIS_URL": redis_url}
    )


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
async def test_probes_need_no_token_and_accept_the_kubelets_host_header(
    path: str, redis_url: str, emulator_app: object
) -> None:
    app = create_app(_settings(redis_url), upstream_transport=httpx.ASGITransport(app=emulator_app))  # type: ignore[arg-type]
    async with AsyncTestClient(app=app) as client:
        response = await client.get(path, headers=KUBELET)
    assert response.status_code == 200, response.text


async def test_with_redis_down_the_pod_stays_ready_and_says_which_dependency_is_missing(emulator_app: object) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(_settings(dead), upstream_transport=httpx.ASGITransport(app=emulator_app))  # type: ignore[arg-type]
    async with AsyncTestClient(app=app) as client:
        ready = await client.get("/readyz", headers=KUBELET)
        alive = await client.get("/livez", headers=KUBELET)
    assert ready.status_code == 200
    assert ready.json()["redis"] == "unavailable"
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
