"""The largest request body, refused with 413 before it is read whole; writes refused with 507
while the disk is nearly full; and a URL holding NUL refused with 400."""

import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.api.failures import STORAGE_FULL, Failure, send_problem
from postroom.errors import BadRequest


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        exempt: Callable[[str, str], bool] = lambda m, p: False,
        larger: Callable[[str, str], int | None] = lambda m, p: None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.larger(scope["method"], scope["path"]) or self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        # An HTTPException is what FastAPI lets through while it reads a body (anything else it
        # turns into a 400); api/problems.py renders it as a 413 problem.
        too_large = HTTPException(413, f"the request body is larger than {limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > limit:

            async def refuse() -> Message:
                raise too_large

            await self.app(scope, refuse, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
            return message

        await self.app(scope, counting_receive, send)


_WRITES = {"POST", "PUT", "PATCH"}


class DiskReserveMiddleware:
    """While any of `paths` has less than `reserve` bytes free, a write (POST, PUT, PATCH)
    answers 507 before it is read: a full disk fails a database write halfway, or an upload
    after streaming it. Reads and DELETE go on, so space can be freed through the API.

    The free space is read at most every `recheck_seconds` (a statvfs of each path on every
    write was ~2% of a POST's CPU): a burst of writes sees the disk as it was up to a second ago,
    well within the reserve's margin."""

    def __init__(
        self, app: ASGIApp, paths: Sequence[Path], reserve: int, recheck_seconds: float = 1.0
    ) -> None:
        self.app = app
        self.paths = paths
        self.reserve = reserve
        self.recheck_seconds = recheck_seconds
        self._was_short = False
        self._read_at = -math.inf

    def _short(self) -> bool:
        now = time.monotonic()
        if now - self._read_at >= self.recheck_seconds:
            self._was_short, self._read_at = self._measure(), now
        return self._was_short

    def _measure(self) -> bool:
        for path in self.paths:
            try:
                if shutil.disk_usage(path).free < self.reserve:
                    return True
            except FileNotFoundError:
                continue  # not made yet: the first write makes it
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _WRITES
            and self.reserve
            and self._short()
        ):
            await send_problem(send, STORAGE_FULL)
            return
        await self.app(scope, receive, send)


NUL_IN_URL = Failure(
    BadRequest.status,
    BadRequest.slug,
    BadRequest.title,
    "the URL must not contain NUL characters (%00)",
)


class RefuseNulMiddleware:
    """No U+0000 in the path or query of a request. PostgreSQL text cannot hold one, so such an
    id or filter value could match nothing and would reach the database as an error. Checked
    here, before routing, rather than as a dependency of every route (FastAPI solves each at
    ~10 µs a request, api/deps.py); paths under `exempt_prefix` (the dashboard, which answers
    a 400 page of its own) are let through."""

    def __init__(self, app: ASGIApp, exempt_prefix: str) -> None:
        self.app = app
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and ("\x00" in scope["path"] or b"%00" in scope["query_string"])
            and not scope["path"].startswith(self.exempt_prefix)
        ):
            await send_problem(send, NUL_IN_URL)
            return
        await self.app(scope, receive, send)
