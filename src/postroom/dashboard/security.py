"""What every dashboard page gets: the signed-in session, its CSRF check, and headers that
lock the page down (CSP, no framing, no caching); errors answered as a page, not JSON."""

import hmac
import secrets
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from postroom.auth import sessions
from postroom.dashboard.templating import render
from postroom.errors import BadRequest, Forbidden, PostroomError
from postroom.settings import Settings

SESSION_COOKIE = "postroom_dashboard"
# Before a session exists, the sign-in form is tied to this cookie instead (double submit).
SIGN_IN_COOKIE = "postroom_dashboard_sign_in"
PREFIX = "/dashboard"

# No inline script or style anywhere; only the message preview may be framed, by our pages.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def preview_csp(remote_images: bool) -> str:
    """The message's own HTML: nothing runs, nothing is submitted, nothing is fetched (but
    https images once asked for); inline styles stay, as mail clients show them."""
    images = "img-src https: data:" if remote_images else "img-src data:"
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; {images}; form-action 'none'; "
        "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""


class DashboardRoute(APIRoute):
    """A dashboard route: its answers carry the page headers, and a failure is a page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                await _refuse_nul(request)
                response = await handler(request)
            except SignInRequired:
                response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
            except PostroomError as error:
                response = render(request, "error.html", {"error": error}, status_code=error.status)
            except RequestValidationError as error:
                problems = [
                    f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors()
                ]
                response = render(request, "error.html", {"problems": problems}, status_code=422)
            for name, value in _PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return page


async def _refuse_nul(request: Request) -> None:
    """No U+0000 in the URL or a form field: PostgreSQL text cannot hold one (as the API's
    refuse_nul says), and the answer should be a 400 page, not a database error."""
    if "\x00" in request.url.path or "%00" in request.url.query:
        raise BadRequest("the URL must not contain NUL characters (%00)")
    if request.method == "POST":
        # Starlette keeps the parsed form on the request: the handler reads the same one.
        form = await request.form()
        if any(isinstance(v, str) and "\x00" in v for v in form.values()):
            raise BadRequest("a form field must not contain NUL characters")


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether the browser reached us over HTTPS (the proxy's word, where it is trusted)."""
    if settings.dashboard.trust_forwarded_proto:
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        if forwarded:
            return forwarded.lower() == "https"
    return request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: timedelta
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, request.app.state.settings),
    )


def new_sign_in_token() -> str:
    return secrets.token_urlsafe(32)


async def _signed_in(request: Request) -> sessions.SignedIn:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    found = await sessions.find_session(request.state.session, token, request.app.state.clock.now())
    if found is None:
        raise SignInRequired
    return found


SignedInDep = Annotated[sessions.SignedIn, Depends(_signed_in)]


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def _checked_form(
    signed_in: SignedInDep, csrf: Annotated[str | None, Form()] = None
) -> sessions.SignedIn:
    """The session of a form post that carries the session's CSRF token (403 without it)."""
    if not same_token(csrf, signed_in.csrf_token):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page and try again")
    return signed_in


CheckedFormDep = Annotated[sessions.SignedIn, Depends(_checked_form)]
