"""The floors: what the stack alone costs for the two measured paths, served exactly like H and the service.

- `GET /redis`: one snapshot read with the service's Redis client options (`service.storage.store.connect`), nothing else.
- `GET /upstream`: one `kyc-status` call to the emulator through httpx on the chosen transport, the JSON decoded.
  The customer id comes in the Authorization header ("Bearer <id>"), so wrk's token rotation picks it.
- `GET /upstream-redis`: the same call inside the Redis round trips issue 15 allows that path (three): read the
  user's snapshot, a script that takes a lease and reads it again, a script that saves and releases; on the
  customer's own keys, with the service's Redis connection class.

A path of the service cannot be faster than its floor; the ratio service / floor is the service's own overhead
(authentication, state, decision, logging, metrics, resilience), and floor / H what the libraries cost. Only the
libraries are imported here (not the service), so the floor's RSS is theirs too.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import msgspec
from litestar import Litestar, Request, Response, get
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from service.server import run
from service.storage.connection import ScopedWriteConnection

_decode = msgspec.json.Decoder().decode
_state: dict[str, Any] = {}


@get("/redis")
async def redis_read() -> Response[bytes]:
    raw = await _state["redis"].get(_state["key"])
    return Response(raw or b"", media_type="application/octet-stream")


_BEGIN = "if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', 11000) then return redis.call('get', KEYS[2]) end"
_FINISH = "redis.call('set', KEYS[2], ARGV[1], 'EX', 600) return redis.call('del', KEYS[1])"


@get("/upstream")
async def upstream_read(request: Request[Any, Any, Any]) -> dict[str, Any]:
    card_id = (request.headers.get("authorization") or "").removeprefix("Bearer ")
    return await _kyc(card_id)


@get("/upstream-redis")
async def upstream_in_redis(request: Request[Any, Any, Any]) -> dict[str, Any]:
    card_id = (request.headers.get("authorization") or "").removeprefix("Bearer ")
    redis = _state["redis"]
    lease, snapshot = f"floor:{{{card_id}}}:lease", f"floor:{{{card_id}}}:snapshot"
    await redis.get(snapshot)
    await _state["begin"](keys=[lease, snapshot], args=["1"])
    answer = await _kyc(card_id)
    await _state["finish"](keys=[lease, snapshot], args=[answer["kyc"] or ""])
    return answer


async def _kyc(card_id: str) -> dict[str, Any]:
    response = await _state["http"].get(f"/yativo-card/customers/{card_id}/kyc-status", headers=_state["auth"])
    body = _decode(response.content)
    return {"status": response.status_code, "kyc": body.get("data", {}).get("kyc_status")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--redis-key", required=True)
    parser.add_argument("--upstream", required=True, help="the emulator's API base URL, ending in /api/v1")
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], default="aiohttp")
    args = parser.parse_args()

    async def start() -> None:
        # The service's client options (service.storage.store.connect) and pool limits (service.yativo.client).
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        _state["redis"] = Redis.from_url(
            args.redis_url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            health_check_interval=15,
            retry=retry,
            connection_class=ScopedWriteConnection,
        )
        _state["begin"] = _state["redis"].register_script(_BEGIN)
        _state["finish"] = _state["redis"].register_script(_FINISH)
        _state["key"] = args.redis_key
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        if args.transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits)
        http = httpx.AsyncClient(base_url=args.upstream, transport=transport, timeout=10)
        token = await http.post("/auth/token", json={"api_key": "bench", "api_secret": "bench"})
        _state["http"] = http
        _state["auth"] = {"Authorization": f"Bearer {token.json()['access_token']}"}

    async def stop() -> None:
        await _state["http"].aclose()
        await _state["redis"].aclose()

    app = Litestar(
        route_handlers=[redis_read, upstream_read, upstream_in_redis],
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=None,
        logging_config=None,
    )
    run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
