"""Rate limits per API key, with `limits`: counted in memory, or in Redis when several API
processes must share one budget."""

import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from redis.asyncio import ConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.errors import TooManyRequests
from postroom.settings import LimitSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    limit: int
    remaining: int

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}


class RateLimiter:
    def __init__(self, settings: LimitSettings, *, key_prefix: str = "postroom") -> None:
        self.storage: Storage
        self._pool: ConnectionPool | None = None
        if settings.rate_limit_storage_url:
            # Our own pool, so that we can close it when the app stops.
            self._pool = ConnectionPool.from_url(settings.rate_limit_storage_url)
            self.storage = RedisStorage(
                settings.rate_limit_storage_url,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed to redis.asyncio.Redis
            )
        else:
            self.storage = MemoryStorage()
        self.write: RateLimitItem = parse(settings.rate_limit_write)
        self.read: RateLimitItem = parse(settings.rate_limit_read)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def hit(self, api_key_id: str, *, write: bool, cost: int = 1) -> Usage | None:
        """Counts one request (as `cost` of them: a batch); raises TooManyRequests past the
        limit. None if the counter store cannot be reached: requests are let through rather
        than refused (logged).

        The window's count is the storage's answer to the increment (the fixed-window
        strategy's `hit`, which returns only whether it fitted): one call to the store, a round
        trip to Redis, instead of three with `get_window_stats`. The window's end is read only
        for a refusal."""
        item = self.write if write else self.read
        key = item.key_for(api_key_id)
        try:
            count = await self.storage.incr(key, item.get_expiry(), amount=cost)
            reset = int(await self.storage.get_expiry(key)) if count > item.amount else 0
        except Exception:
            log.warning("rate limit store unreachable; not limiting", exc_info=True)
            return None
        usage = Usage(item.amount, max(0, item.amount - count))
        if count > item.amount:
            raise TooManyRequests(
                f"more than {item} requests with this API key",
                headers={
                    **usage.headers(),
                    "X-RateLimit-Retry-After": str(reset),
                    "Retry-After": str(max(1, reset - int(time.time()))),
                },
            )
        return usage


class RateLimitHeadersMiddleware:
    """Puts the X-RateLimit-* headers counted for the request (api/deps.py leaves them in the
    request's state) on its answer, whatever made it: a route's return value, a streamed
    download, a problem from a handler or from api/failures.py."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                counted = scope.get("state", {}).get("rate_limit_headers")
                if counted:
                    present = {name.lower() for name, _ in message["headers"]}
                    extra = [
                        (name.lower().encode(), value.encode())
                        for name, value in counted.items()
                        if name.lower().encode() not in present
                    ]
                    message = {**message, "headers": [*message["headers"], *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
