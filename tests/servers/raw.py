"""A TCP server on 127.0.0.1 that is not an SMTP server, or stops being one: it sends fixed
bytes on connect, then reads and never answers (a tarpit, or another service's banner)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class RawServer:
    port: int
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


@asynccontextmanager
async def raw_server(first: bytes) -> AsyncIterator[RawServer]:
    """Serves in the running loop (the test's, which the worker shares) until the block ends."""
    state = RawServer(port=0)
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        state.connections += 1
        try:
            writer.write(first)
            await writer.drain()
            while chunk := await reader.read(4096):
                state.received += chunk
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await server.wait_closed()
