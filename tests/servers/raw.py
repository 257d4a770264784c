"""TCP servers on 127.0.0.1 in the test's loop: serving_tcp runs any conversation (the hostile
SMTP server of tests/servers/smtp.py has one); raw_server is not an SMTP server, or stops being
one: it sends fixed bytes on connect, then reads and never answers (a tarpit, or another
service's banner)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class RawServer:
    port: int
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


Conversation = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving_tcp(converse: Conversation) -> AsyncIterator[int]:
    """A port on 127.0.0.1, served in the running loop (the test's, which the worker shares)
    until the block ends: `converse` runs for each connection, which closes after it. Its
    reader reads lines of up to 64 KiB (asyncio's default; a message's are at most 998 bytes)."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await converse(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await server.wait_closed()


@asynccontextmanager
async def raw_server(first: bytes) -> AsyncIterator[RawServer]:
    """Sends `first` on each connection, then keeps what it reads and never answers."""
    state = RawServer(port=0)

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.write(first)
        await writer.drain()
        while chunk := await reader.read(4096):
            state.received += chunk

    async with serving_tcp(converse) as port:
        state.port = port
        yield state
