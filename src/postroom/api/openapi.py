"""What every resource operation shares, added to the generated OpenAPI document in one place:
the Idempotency-Key header, rate-limit headers and answers, the body-size answer, the outage
(503) and full-disk (507) answers of api/failures.py; and the webhook event types (the
document's `webhooks` section)."""

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from postroom.api.deps import API_KEY_SCHEMES, current_organization
from postroom.api.problems import problem_responses

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the same key with the same request returns the first "
    "answer (with `Idempotent-Replayed: true`) and creates nothing new; with another request "
    "it is a 422; while the first request is still running, a 409. Kept for "
    "POSTROOM_LIMITS__IDEMPOTENCY_RETENTION_HOURS (7 days). Only successful answers are kept.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the current window for this API key.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer"},
    },
}
_TOO_MANY = problem_responses(429)[429]
_TOO_MANY["headers"] = {
    "X-RateLimit-Retry-After": {
        "description": "UTC timestamp (seconds) when the window resets.",
        "schema": {"type": "integer"},
    },
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
}

_UNAVAILABLE = problem_responses(503)[503]
_UNAVAILABLE["headers"] = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again.",
        "schema": {"type": "integer"},
    },
}


def document_cross_cutting(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        servers=app.servers,
    )
    _document_api_keys(app, schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "security" not in operation:
                continue  # health and metrics: no key, no limits
            responses = operation["responses"]
            responses.setdefault("429", _TOO_MANY)
            responses.setdefault("503", _UNAVAILABLE)
            if method in {"post", "patch", "put"}:
                responses.setdefault("415", problem_responses(415)[415])
                responses.setdefault("507", problem_responses(507)[507])
            for status, response in responses.items():
                if status.startswith(("2", "4")) and status not in {"401", "429"}:
                    response.setdefault("headers", {}).update(_RATE_HEADERS)
            if method in {"post", "patch"}:
                operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)
                if not path.endswith("/files"):
                    responses.setdefault("413", problem_responses(413)[413])
    app.openapi_schema = schema
    return schema


def _document_api_keys(app: FastAPI, schema: dict[str, Any]) -> None:
    """Both API key schemes on every operation that takes the current organization, which
    reads the key itself (api/deps.py) instead of naming the schemes as dependencies."""
    schemes = {scheme.scheme_name: scheme.model for scheme in API_KEY_SCHEMES}
    paths = schema["paths"]
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not _takes_key(route.dependant):
            continue
        for method in route.methods or ():
            operation = paths.get(context.path_format, {}).get(method.lower())
            if operation is not None:
                operation["security"] = [{name: []} for name in schemes]
    security_schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    for name, model in schemes.items():
        security_schemes[name] = model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _takes_key(dependant: Dependant) -> bool:
    return any(d.call is current_organization or _takes_key(d) for d in dependant.dependencies)
