"""RFC 7807 problem responses: the one place where any error becomes an HTTP answer."""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from postroom.api.failures import failure_of, report
from postroom.errors import PROBLEM_BASE, FieldProblem, InvalidFields, PostroomError

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
    parts = [str(p) for p in location if p != "[key]"]  # a dict's key: named by itself
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts)


def _message(error: Any) -> str:
    # Pydantic counts a string's length in "items" when the limit applies after a validator
    # (Annotated[str, AfterValidator(...), Field(max_length=...)]): say characters, as it does
    # for a plain string.
    kind, value, context = error.get("type"), error.get("input"), error.get("ctx") or {}
    if kind in {"too_long", "too_short"} and isinstance(value, str):
        bound = "most" if kind == "too_long" else "least"
        limit = context.get("max_length" if kind == "too_long" else "min_length")
        if limit is not None:
            unit = "character" if limit == 1 else "characters"
            return f"String should have at {bound} {limit} {unit}, not {len(value)}"
    return str(error["msg"])


def field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """Pydantic's errors of a request as the fields they name."""
    return [FieldProblem(_field_name(tuple(e["loc"])), _message(e)) for e in errors]


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
    fields = [{"field": p.field, "message": p.message} for p in field_problems(errors)]
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
    slug = _HTTP_SLUGS.get(exc.status_code) or phrase.lower().replace(" ", "-")
    return problem_response(exc.status_code, phrase, detail, slug=slug, headers=headers or None)


# Starlette's own errors, named as postroom's errors of the same status are (errors.py).
_HTTP_SLUGS = {400: "bad-request", 413: "payload-too-large", 500: "internal-error"}


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
    request will work again at once. There is no ping before each use to find it out sooner.
    An unreachable or full database answers 503 or 507 (api/failures.py)."""
    assert isinstance(exc, DBAPIError)
    failure = failure_of(exc)
    report(failure, exc, {"route": _route(request), "method": request.method})
    return problem_response(
        failure.status,
        failure.title,
        failure.detail,
        slug=failure.slug,
        headers=failure.headers() or None,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PostroomError, _postroom_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    # Any other exception: api/failures.UnhandledErrorMiddleware.


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
