"""Dependencies every router uses: the request's session, the caller's organization, the clock.

Every dependency is `async def`, even when it awaits nothing: FastAPI runs a plain `def`
dependency in a worker thread, a hop to a thread and back for each one on every request.

FastAPI solves each named dependency on every request, at ~10 µs of CPU each (bench/RESULTS.md).
The routes that create messages, the ingest path the benchmark measures, read the session, the
clock and the settings with the plain functions below (`session_of`, `clock_of`, `settings_of`)
instead of three dependencies."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.api.idempotency import claim_idempotency_key
from postroom.api.ratelimit import RateLimiter
from postroom.auth import service as auth
from postroom.core.clock import Clock
from postroom.core.crypto import SecretBox
from postroom.errors import NotFound
from postroom.settings import Settings


def session_of(request: Request) -> AsyncSession:
    """The request's session: opened, committed and closed by api/transactions.py around the
    whole request."""
    session: AsyncSession = request.state.session
    return session


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _session(request: Request) -> AsyncSession:
    return session_of(request)


SessionDep = Annotated[AsyncSession, Depends(_session)]

# Read by `current_organization` itself rather than named as dependencies: FastAPI solves each
# named dependency on every request at ~25 µs of CPU (bench/RESULTS.md), so the steps below are
# plain calls in one. api/openapi.py documents both schemes on each operation that takes a key.
API_KEY_SCHEMES = (
    APIKeyHeader(name="REB-APIKEY", auto_error=False, scheme_name="SecretApiKey"),
    HTTPBearer(auto_error=False, scheme_name="BearerApiKey"),
)


async def current_organization(request: Request) -> str:
    """The caller's organization, after three steps in this order: who calls, the request
    counted against its key's rate limit, and its Idempotency-Key claimed."""
    caller = await _caller(request)
    await _count_request(request, caller)
    await claim_idempotency_key(request, session_of(request), caller.organization_id)
    return caller.organization_id


OrganizationDep = Annotated[str, Depends(current_organization)]


async def _caller(request: Request) -> auth.Caller:
    """Who calls: the API key (401 without a valid one) and the organization it reaches."""
    reb_apikey, bearer = API_KEY_SCHEMES
    key = await reb_apikey(request)
    if key is None and (credentials := await bearer(request)) is not None:
        key = credentials.credentials
    caller = await auth.authenticate(
        session_of(request), key, cache=request.app.state.caller_cache, now=clock_of(request).now()
    )
    # Under /organizations/{organizationId}/…, the path must name the key's own organization;
    # another one answers as if it did not exist.
    in_path = request.path_params.get("organizationId")
    if in_path is not None and in_path != caller.organization_id:
        raise NotFound(f"organization {in_path} not found")
    request.state.organization_id = caller.organization_id
    request.state.api_key_id = caller.api_key_id
    return caller


async def _count_request(request: Request, caller: auth.Caller) -> None:
    """The request counted against its key's limit: 429 past it; X-RateLimit-* headers."""
    limiter: RateLimiter = request.app.state.rate_limiter
    usage = await limiter.hit(caller.api_key_id, write=request.method not in {"GET", "HEAD"})
    if usage is not None:
        # On every answer to the request, errors and streamed downloads included
        # (api/ratelimit.RateLimitHeadersMiddleware).
        request.state.rate_limit_headers = usage.headers()


async def count_more_writes(request: Request, extra: int) -> None:
    """Counts `extra` more writes against the caller's limit for a request that makes many
    resources (a batch counts as one write per message): 429 past it. After OrganizationDep."""
    if extra <= 0:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    usage = await limiter.hit(request.state.api_key_id, write=True, cost=extra)
    if usage is not None:
        request.state.rate_limit_headers = usage.headers()


async def _clock(request: Request) -> Clock:
    return clock_of(request)


ClockDep = Annotated[Clock, Depends(_clock)]


async def _settings(request: Request) -> Settings:
    return settings_of(request)


SettingsDep = Annotated[Settings, Depends(_settings)]


async def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(_secret_box)]
