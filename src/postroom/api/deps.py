"""Dependencies every router uses: the request's session, the caller's organization, the clock.

Every dependency is `async def`, even when it awaits nothing: FastAPI runs a plain `def`
dependency in a worker thread, a hop to a thread and back for each one on every request."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
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

_reb_apikey = APIKeyHeader(name="REB-APIKEY", auto_error=False, scheme_name="SecretApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="BearerApiKey")


async def _caller(
    request: Request,
    reb_apikey: Annotated[str | None, Depends(_reb_apikey)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> auth.Caller:
    """Who calls: the API key (401 without a valid one) and the organization it reaches."""
    key = reb_apikey or (bearer.credentials if bearer else None)
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
    return caller


CallerDep = Annotated[auth.Caller, Depends(_caller)]

# The steps below each take the caller from the one before, so that they run in this order, and
# the request's session is read where it is needed rather than named as a dependency: FastAPI
# solves a dependency everywhere it is named, even one it has solved for the request already
# (then only to reuse the value), at ~25 µs of CPU each time (bench/RESULTS.md).


async def _rate_limited(request: Request, caller: CallerDep) -> auth.Caller:
    """The caller, once its request is counted against its key's limit: 429 past it;
    X-RateLimit-* headers."""
    limiter: RateLimiter = request.app.state.rate_limiter
    usage = await limiter.hit(caller.api_key_id, write=request.method not in {"GET", "HEAD"})
    if usage is not None:
        # On every answer to the request, errors and streamed downloads included
        # (api/ratelimit.RateLimitHeadersMiddleware).
        request.state.rate_limit_headers = usage.headers()
    return caller


async def _organization(
    request: Request, caller: Annotated[auth.Caller, Depends(_rate_limited)]
) -> str:
    """The caller's organization, once the request is within its key's rate limit and its
    Idempotency-Key, if any, is claimed (in that order): the first request with a key claims
    it; a repeat is answered with the stored answer (api/idempotency.py)."""
    await claim_idempotency_key(request, _request_session(request), caller.organization_id)
    return caller.organization_id


OrganizationDep = Annotated[str, Depends(_organization)]


async def count_more_writes(request: Request, caller: auth.Caller, extra: int) -> None:
    """Counts `extra` more writes against the caller's limit for a request that makes many
    resources (a batch counts as one write per message): 429 past it."""
    if extra <= 0:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    usage = await limiter.hit(caller.api_key_id, write=True, cost=extra)
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
    if "\x00" in request.url.path or "%00" in request.url.query:
        raise BadRequest("the URL must not contain NUL characters (%00)")
