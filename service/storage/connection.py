"""redis-py's TCP connection with cheaper writes (imported by the benchmarks' floors too, so it stays this small)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class ScopedWriteConnection(Connection):
    """redis-py's TCP connection, with each write bounded by a timeout scope instead of `asyncio.wait_for`.

    On Python 3.11 `wait_for` runs the write in a Task of its own: one more task and two more event-loop turns for
    every command sent, on a path that sends two or three (BENCHMARKS.md, run E). What a write may do is unchanged:
    the socket timeout bounds it, and a write that times out or fails drops the connection, as redis-py's does.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.socket_timeout:
            await super().send_packed_command(command, check_health)
            return
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            async with asyncio.timeout(self.socket_timeout):
                await self._send_packed_command(command)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)
            raise
