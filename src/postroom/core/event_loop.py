"""The event loop every postroom process runs on: uvloop where it is installed (it is a
dependency everywhere but Windows), as uvicorn chooses for the API; asyncio's own otherwise."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover (Windows)
        return asyncio.run(main)
    return uvloop.run(main)
