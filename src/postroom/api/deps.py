"""Dependencies every router uses: the request's session, the caller's organization, the clock.

Every dependency is `async def`, even when it awaits nothing: FastAPI runs a plain `def`
dependency in a worker thread, a hop to a thread and back for each one on every request."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.api.idempotency import claim_idempotency_key
from postroom.api.ratelimit import RateLimiter
from postroom.auth import service as auth
from postroom.core.clock import Clock
from postroom.core.crypto import SecretBox
from postroom.errors import BadRequest, NotFound
from postroom.settings import Settings


def _request_session(request: Request) -> AsyncSession:
    # Opened, committed and closed by api/transactions.py around the whole request.
    session: AsyncSession = request.state.session
    return session


async def _session(request: Request) -> AsyncSession:
    return _request_session(request)


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
    await claim_idempotency_key(request, _request_session(request), caller.organization_id)
    return caller.organization_id


OrganizationDep = Annotated[str, Depends(current_organization)]


async def _caller(request: Request) -> auth.Caller:
    """Who calls: the API key (401 without a valid one) and the organization it reaches."""
    reb_apikey, bearer = API_KEY_SCHEMES
    key = await reb_apikey(request)
    if key is None and (credentials := await bearer(request)) is not None:
        key = credentials.credentials
    app_state = request.app.state
    caller = await auth.authenticate(
        _request_session(request), key, cache=app_state.caller_cache, now=app_state.clock.now()
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
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(_clock)]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(_secret_box)]


async def refuse_nul(request: Request) -> None:
    """Every resource route: no U+0000 in the path or query. PostgreSQL text cannot hold one, so
    such an id or filter value could match nothing and would reach the database as an error."""
    scope = request.scope  # not request.url, which parses the whole URL on every request
    if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
        raise BadRequest("the URL must not contain NUL characters (%00)")
