"""One JSON log line and one metric sample per request: route, status, time, organization.
Never a body, a header value or a key."""

import logging
import time
from functools import lru_cache

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.core.metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("postroom.requests")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        logged = False

        def record() -> None:
            nonlocal logged
            logged = True
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # The route's template, not the path: ids would make every path its own series.
            template = getattr(route, "path", "unmatched")
            count, duration = _series(scope["method"], template, status)
            count.inc()
            duration.observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "organization_id": scope.get("state", {}).get("organization_id"),
                },
            )

        async def send_recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the last byte goes out, so that whoever reads the answer can
                # also read its log line and metric.
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        finally:
            if not logged:
                record()


@lru_cache(maxsize=1024)
def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The request counter's and the duration histogram's series of one kind of answer, looked
    up once: `labels()` checks and locks on each call."""
    return REQUESTS.labels(method, route, str(status)), REQUEST_SECONDS.labels(route)
