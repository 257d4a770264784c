"""Waiting on another process's progress, where no event can cross the process boundary."""

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    """Polls `check` until it holds; fails after `timeout` seconds. Use only across processes
    (a worker subprocess, a database); within one process wait on an event instead."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)
