"""Dependencies every router uses: the request's session, the caller's organization, the clock."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.auth import service as auth
from postroom.core.clock import Clock
from postroom.core.crypto import SecretBox
from postroom.errors import NotFound
from postroom.settings import Settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # One transaction per request, committed before the response leaves (scope="function"
    # below): a client that reads 201 knows the row is durable; any error rolls it all back.
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]

_reb_apikey = APIKeyHeader(name="REB-APIKEY", auto_error=False, scheme_name="SecretApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="BearerApiKey")


async def _organization(
    request: Request,
    session: SessionDep,
    reb_apikey: Annotated[str | None, Depends(_reb_apikey)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    key = reb_apikey or (bearer.credentials if bearer else None)
    organization_id = await auth.authenticate(session, key)
    # Under /organizations/{organizationId}/…, the path must name the key's own organization;
    # another one answers as if it did not exist.
    in_path = request.path_params.get("organizationId")
    if in_path is not None and in_path != organization_id:
        raise NotFound(f"organization {in_path} not found")
    return organization_id


OrganizationDep = Annotated[str, Depends(_organization)]


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(_clock)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(_secret_box)]
