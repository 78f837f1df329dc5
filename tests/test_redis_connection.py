"""The service's Redis connection: writes bounded by a timeout scope, behaving as redis-py's own on every failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.storage.connection import ScopedWriteConnection
from service.storage.store import connect

BIG = b"x" * (64 * 1024 * 1024)  # more than any socket buffer takes: the write has to wait for the peer


@pytest.fixture
async def deaf_server() -> AsyncIterator[int]:
    """A TCP server that answers the client's handshake in advance and never reads: a write to it stalls once the
    buffers are full."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK\r\n" * 4)  # redis-py's CLIENT SETINFO on connect (a reply too many is never read)
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def test_plain_tcp_urls_get_the_scoped_connection_and_tls_keeps_redis_pys() -> None:
    plain = connect("redis://127.0.0.1:6390/0")
    tls = connect("rediss://127.0.0.1:6390/0")
    assert plain.connection_pool.connection_class is ScopedWriteConnection  # type: ignore[attr-defined]
    assert tls.connection_pool.connection_class is not ScopedWriteConnection  # type: ignore[attr-defined]


async def test_commands_and_scripts_round_trip(redis_url: str) -> None:
    client = connect(redis_url)
    try:
        await client.set("bff-test:scoped", "1")  # type: ignore[attr-defined]
        script = client.register_script("return redis.call('incr', KEYS[1])")  # type: ignore[attr-defined]
        assert await script(keys=["bff-test:scoped"]) == 2
        pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
        pipe.get("bff-test:scoped")
        pipe.delete("bff-test:scoped")
        assert await pipe.execute() == [b"2", 1]
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def test_a_stalled_write_times_out_and_drops_the_connection(deaf_server: int) -> None:
    conn = ScopedWriteConnection(host="127.0.0.1", port=deaf_server, socket_timeout=0.2)
    await conn.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
        await conn.send_packed_command([b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$67108864\r\n", BIG, b"\r\n"])
    assert loop.time() - started < 2.0
    assert not conn.is_connected


async def test_a_write_to_a_closed_peer_is_a_connection_error(redis_url: str) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    conn = ScopedWriteConnection(host=host, port=int(port), socket_timeout=0.5)
    await conn.connect()
    conn._writer.transport.abort()  # type: ignore[union-attr]  # the peer is gone: the next write fails
    await asyncio.sleep(0.01)
    with pytest.raises(RedisConnectionError, match="writing to socket"):
        await conn.send_packed_command(conn.pack_command("PING"), check_health=False)
    assert not conn.is_connected


async def test_without_a_socket_timeout_it_is_redis_pys_write(redis_url: str) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    ours = ScopedWriteConnection(host=host, port=int(port), socket_timeout=None)
    theirs = Connection(host=host, port=int(port), socket_timeout=None)
    for conn in (ours, theirs):
        await conn.connect()
        await conn.send_command("PING")
        assert await conn.read_response() in (b"PONG", "PONG")
        await conn.disconnect()
