"""RFC 7807 problem responses: the one place where any error becomes an HTTP answer."""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from postroom.errors import PROBLEM_BASE, InvalidFields, PostroomError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _postroom_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PostroomError)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidFields):
        extra["invalidFields"] = [{"field": p.field, "message": p.message} for p in exc.problems]
    return problem_response(
        exc.status, exc.title, exc.detail, slug=exc.slug, headers=exc.headers or None, **extra
    )


def _field_name(location: tuple[int | str, ...]) -> str:
    # ("body", "to", 0) -> "to.0"; ("query", "limit") -> "limit"; ("body",) -> "body".
    parts = [str(p) for p in location]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(
            400, "Bad request", "the request body is not valid JSON", slug="bad-request"
        )
    content_type = request.headers.get("content-type", "")
    body_errors = any(tuple(e["loc"])[:1] == ("body",) for e in errors)
    if body_errors and request.method in {"POST", "PATCH", "PUT"} and "json" not in content_type:
        return problem_response(
            415,
            "Unsupported media type",
            "send the request body as JSON with Content-Type: application/json",
            slug="unsupported-media-type",
        )
    fields = [{"field": _field_name(tuple(e["loc"])), "message": str(e["msg"])} for e in errors]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return problem_response(
        422, "Validation error", detail, slug="validation-error", invalidFields=fields
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(exc.status_code, phrase, detail, headers=headers or None)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    # Starlette names the methods of the first route that matches the path only; each method
    # is a route of its own here. Ask every route whether the same path under each method would
    # match in full: app.routes holds included routers too, which have no `methods` of their own.
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.routes
        )
    ]


def _route(request: Request) -> str:
    # The route's template, not the path, which may carry a token (a verification link).
    return getattr(request.scope.get("route"), "path", "unmatched")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A connection found dead (the database restarted, or dropped it) is replaced by the pool,
    which also refreshes every connection older than it: nothing was written, and the same
    request will work again at once. There is no ping before each use to find it out sooner."""
    assert isinstance(exc, DBAPIError)
    if not exc.connection_invalidated:
        return await _unexpected_error(request, exc)
    log.warning(
        "database connection lost; the request was not carried out",
        extra={"route": _route(request), "method": request.method},
    )
    return problem_response(
        503,
        "Service unavailable",
        "the connection to the database was lost and has been replaced; nothing was stored, "
        "send the request again",
        headers={"Retry-After": "1"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"route": _route(request), "method": request.method})
    return problem_response(
        500, "Internal server error", "the server could not complete the request"
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PostroomError, _postroom_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _problem_schema(status: int, *, with_fields: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "enum": [status]},
        "detail": {"type": "string"},
    }
    if with_fields:
        properties["invalidFields"] = {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        }
    return {"type": "object", "required": ["type", "title", "status"], "properties": properties}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json answers for these statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {
                PROBLEM_JSON: {"schema": _problem_schema(status, with_fields=status == 422)}
            },
        }
        for status in statuses
    }
