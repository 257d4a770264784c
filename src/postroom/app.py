"""The composition root of the HTTP service: create_app(settings) builds everything it needs."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware.cors import CORSMiddleware

from postroom.api.developer_domains import DeveloperDomainsMiddleware
from postroom.api.failures import UnhandledErrorMiddleware
from postroom.api.idempotency import install_replay_handler
from postroom.api.limits import (
    BodySizeLimitMiddleware,
    DiskReserveMiddleware,
    RefuseNulMiddleware,
)
from postroom.api.observability import RequestLogMiddleware
from postroom.api.openapi import document_cross_cutting
from postroom.api.problems import install_problem_handlers
from postroom.api.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from postroom.api.routes import include_routes
from postroom.api.transactions import TransactionMiddleware
from postroom.auth import service as auth
from postroom.core import metrics_dir
from postroom.core.clock import Clock, SystemClock
from postroom.core.collector import settle_after_startup
from postroom.core.crypto import SecretBox
from postroom.core.logging import configure_logging
from postroom.dashboard.router import include_dashboard
from postroom.dashboard.security import PREFIX as DASHBOARD_PREFIX
from postroom.db.driver import OwnConnections
from postroom.db.engine import (
    ConnectionGate,
    create_engine,
    create_sessionmaker,
    is_sqlite,
    reading,
)
from postroom.db.group_commit import GroupCommit, in_session
from postroom.delivery.worker import EmbeddedWorker
from postroom.messages import service as messages
from postroom.messages.models import EmailMessage
from postroom.settings import Settings, load_settings

# Database connections an API process holds at most for its requests (PostgreSQL).
API_CONNECTIONS = 20
# Groups of new messages written at once (PostgreSQL; SQLite has one writer at a time): with one,
# every request of a busy process waited for the group being committed and the process sat idle
# through the commit's disk flush; with two, the next group is written meanwhile (ingest
# 1,144 -> 1,492 requests/s in one run; three gave 1,352).
GROUP_COMMIT_WRITERS = 2

NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}

DESCRIPTION = """\
Transactional email with a REST API wire-compatible with Rebilly's email messages.

Authenticate with `REB-APIKEY: <key>` or `Authorization: Bearer <key>`. Every operation is
also served under `/organizations/{{organizationId}}` (the organization must be the key's own).
Errors are RFC 7807 `application/problem+json` documents.

Limits: JSON request bodies up to {max_body} bytes (413 beyond); files up to {max_file} bytes;
at most 50 addresses in each of `to`, `cc`, `bcc`; rate limits per API key of {writes} for
writes and {reads} for reads (429 beyond, with `Retry-After`).
"""


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    embedded_worker: bool = False,
    on_worker_death: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """`embedded_worker`: a delivery worker runs beside the API (`postroom serve`); if it dies,
    /readyz answers 503 and `on_worker_death` is called (from the worker's thread)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # At most 20 connections, as with 10 kept and 10 more while busy, but all of them kept:
        # under load the extra 10 were closed and opened again all the time, and a new asyncpg
        # connection costs a few ms of CPU (TLS attempt, authentication, type codecs).
        engine = create_engine(
            settings.resolved_database_url, pool_size=API_CONNECTIONS, max_overflow=0
        )
        app.state.engine = engine
        # SQLite's writers wait for each other in the database (BEGIN IMMEDIATE) anyway.
        app.state.connection_gate = None if is_sqlite(engine) else ConnectionGate(API_CONNECTIONS)
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_sessionmaker = create_sessionmaker(reading(engine))
        own = None if is_sqlite(engine) else OwnConnections(engine)
        app.state.message_group = _message_group(app.state.sessionmaker, own)
        app.state.rate_limiter = RateLimiter(settings.limits)
        worker = EmbeddedWorker(settings, clock, on_worker_death) if embedded_worker else None
        app.state.embedded_worker = worker
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            await app.state.rate_limiter.aclose()
            if own is not None:
                await own.aclose()
            await engine.dispose()
            metrics_dir.process_ended()

    # /docs and /redoc with their scripts and styles served from here, not a CDN: they work on a
    # host with no way out (fastapi-offline ships Swagger UI 5 and ReDoc).
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="postroom",
        version="0.1.0",
        description=DESCRIPTION.format(
            max_body=settings.limits.max_body_bytes,
            max_file=settings.files.max_file_bytes,
            writes=settings.limits.rate_limit_write,
            reads=settings.limits.rate_limit_read,
        ),
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks looked for a configured provider on every request
        # (~10 µs of CPU each); postroom reports through its JSON log lines and /metrics.
        telemetry=NO_TELEMETRY,
        servers=[
            {"url": "/", "description": "this server"},
            {
                "url": "/organizations/{organizationId}",
                "description": "organization-scoped, as Rebilly's SDK calls it",
                "variables": {"organizationId": {"default": "org_"}},
            },
        ],
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.caller_cache = auth.CallerCache(
        timedelta(seconds=settings.limits.api_key_cache_seconds)
    )
    app.state.secret_box = SecretBox(settings.stored_secret())
    install_problem_handlers(app)
    install_replay_handler(app)
    include_routes(app)
    include_dashboard(app)
    # Outermost last: logging sees every answer; the body limit applies before any reading;
    # the transaction wraps the handlers and commits before the response starts.
    app.add_middleware(TransactionMiddleware)
    app.add_middleware(RefuseNulMiddleware, exempt_prefix=DASHBOARD_PREFIX)
    app.add_middleware(DeveloperDomainsMiddleware, allowed=settings.developer_domains_allowed())
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        exempt=_is_upload,
        larger=lambda method, path: (
            settings.limits.max_batch_body_bytes if _is_batch(method, path) else None
        ),
    )
    app.add_middleware(
        DiskReserveMiddleware,
        paths=[settings.data_dir, settings.blob_dir],
        reserve=settings.files.reserve_bytes,
    )
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(RateLimitHeadersMiddleware)
    if origins := settings.cors_origin_list():
        # Outside the transaction: a preflight is answered here, with no key and no session.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: document_cross_cutting(app)  # type: ignore[method-assign]
    return app


# What a browser script may read of an answer, besides the CORS-safelisted headers.
EXPOSED_HEADERS = [
    "Location",
    "Pagination-Total",
    "Pagination-Limit",
    "Pagination-Offset",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Retry-After",
    "Retry-After",
    "Idempotent-Replayed",
    "Content-Disposition",
]


def _message_group(
    sessionmaker: async_sessionmaker[AsyncSession], own: OwnConnections | None
) -> GroupCommit[EmailMessage, Any]:
    """New messages' group commit: on SQLite through sessions, one group at a time (the database
    has one writer); on PostgreSQL GROUP_COMMIT_WRITERS groups at once, each on a connection of
    the group's own (db/driver.OwnConnections), besides the requests' pool, in one statement
    (messages.service.store_new_messages)."""
    if own is None:
        return GroupCommit(in_session(sessionmaker), messages.store_new_messages)
    return GroupCommit(own.connection, messages.store_new_messages, writers=GROUP_COMMIT_WRITERS)


def _is_upload(method: str, path: str) -> bool:
    # File uploads enforce their own, larger, limit while streaming (files/router.py).
    return method == "POST" and path.endswith("/files")


def _is_batch(method: str, path: str) -> bool:
    # Many messages in one body (messages/batch_router.py).
    return method == "POST" and path.endswith("/email-message-batches")


def create_app_from_environment() -> FastAPI:
    """The factory `postroom api` hands to uvicorn, which imports it in each worker process."""
    settings = load_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    app = create_app(settings)
    settle_after_startup()
    return app
