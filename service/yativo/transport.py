"""The default HTTP transport under the Yativo client: httpx's API over aiohttp's connection pool.

httpx's own pool spends most of a request's CPU time on pool bookkeeping once many requests are in flight
(encode/httpx#3215); measured side by side (BENCHMARKS.md) aiohttp's pool costs a fraction of it. The client keeps
speaking httpx, so timeouts, the request-id header, `follow_redirects=False` and the test seam (`transport=`) are
unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


class _Stream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError as exc:
            raise _remap(exc) from exc

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except httpx.TransportError as exc:
            raise _remap(exc) from exc


class FastTransport(AiohttpTransport):
    """AiohttpTransport with the failure classes the client relies on to tell "never sent" from "maybe sent".

    httpx-aiohttp maps every aiohttp connection error, including a connection dropped after the request went out,
    to httpx.ConnectTimeout; the client would then take a create the upstream may have committed for one that
    never left this process.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise _remap(exc) from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Stream(response.stream)
        return response


def _remap(exc: httpx.TransportError) -> httpx.TransportError:
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(cause))
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause))  # refused, unreachable, DNS: nothing was sent
    if isinstance(cause, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(str(cause))
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(cause))
    if isinstance(cause, (aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return httpx.ReadError(str(cause))
    return exc


def default_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return FastTransport(limits=limits)
