"""Signing in with an API key (a server-side session behind an HttpOnly cookie) and out."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from postroom.auth import sessions
from postroom.dashboard.security import (
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    CheckedFormDep,
    DashboardRoute,
    new_sign_in_token,
    same_token,
    set_cookie,
)
from postroom.dashboard.templating import render
from postroom.errors import Forbidden, Unauthorized

router = APIRouter(route_class=DashboardRoute)
_SIGN_IN_FORM_LIFETIME = timedelta(hours=1)


def _sign_in_form(request: Request, problem: str | None = None, status_code: int = 200) -> Response:
    token = new_sign_in_token()
    response = render(
        request, "sign_in.html", {"csrf": token, "problem": problem}, status_code=status_code
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, _SIGN_IN_FORM_LIFETIME)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_form(request)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    if not same_token(csrf, request.cookies.get(SIGN_IN_COOKIE, "")):
        raise Forbidden("the sign-in form's CSRF token is missing or wrong; reload the page")
    state = request.app.state
    lifetime = timedelta(hours=state.settings.dashboard.session_hours)
    try:
        new = await sessions.sign_in(
            request.state.session,
            api_key,
            cache=state.caller_cache,
            now=state.clock.now(),
            lifetime=lifetime,
        )
    except Unauthorized:
        return _sign_in_form(request, "That API key is not valid.", status_code=401)
    response = RedirectResponse(f"{PREFIX}/messages", status_code=303)
    set_cookie(response, request, SESSION_COOKIE, new.token, lifetime)
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, signed_in: CheckedFormDep) -> Response:
    await sessions.sign_out(request.state.session, request.cookies[SESSION_COOKIE])
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response
