"""Wire conventions shared by every resource: RFC 3339 UTC times and absolute `_links`."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Request
from pydantic import AfterValidator, BaseModel, PlainSerializer, WithJsonSchema
from starlette.types import Scope

from postroom.core.control_characters import header_text, secret_text


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


WireTime = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "readOnly": True}),
]


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold U+0000 (the driver refuses the value, a 500); refuse it here on
    # every database, so SQLite and PostgreSQL accept the same input.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


WireStr = Annotated[str, AfterValidator(_storable)]
"""A client-given string that any of our databases can store."""

TextLine = Annotated[str, AfterValidator(header_text)]
"""Client text that becomes part of a header line (a subject, a name): no control characters
but tab."""

SecretLine = Annotated[str, AfterValidator(secret_text)]
"""A secret, username or file name: no control characters at all."""


class SelfLink(BaseModel):
    rel: Literal["self"] = "self"
    href: str


def resource_url(request: Request, *path: str) -> str:
    """An absolute URL on this server, built from the request's own base URL."""
    return _base_url(request) + "/" + "/".join(path)


def _base_url(request: Request) -> str:
    # Starlette builds request.base_url by parsing a whole URL again on every request; it
    # depends only on these, which take few values on one server.
    scope = request.scope
    server = scope.get("server")
    root = scope.get("app_root_path", scope.get("root_path", ""))
    key = (scope["scheme"], server and tuple(server), root, _host(scope))
    base = _BASE_URLS.get(key)
    if base is None:
        base = str(request.base_url).rstrip("/")
        if len(_BASE_URLS) >= _BASE_URLS_KEPT:
            _BASE_URLS.clear()  # the Host header is the client's: keep only so many
        _BASE_URLS[key] = base
    return base


_BASE_URLS: dict[tuple[object, ...], str] = {}
_BASE_URLS_KEPT = 256


def _host(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"host":
            return bytes(value)
    return None
