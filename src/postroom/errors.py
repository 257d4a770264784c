"""The errors services raise. Each carries its HTTP status and problem type; api/problems.py
renders them as RFC 7807 documents, so nothing below the router knows about HTTP."""

from dataclasses import dataclass

PROBLEM_BASE = "urn:postroom:problem:"


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class PostroomError(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequest(PostroomError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(PostroomError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, *, scheme: str = "Bearer") -> None:
        # RFC 9110: a 401 names how to authenticate. The key goes as a bearer token (or in
        # Rebilly's REB-APIKEY header, which no scheme names); a provider's event webhook
        # may use Basic.
        super().__init__(detail, headers={"WWW-Authenticate": f'{scheme} realm="postroom"'})


class Forbidden(PostroomError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(PostroomError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(PostroomError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(PostroomError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class TooManyRequests(PostroomError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class InvalidFields(PostroomError):
    status, slug, title = 422, "validation-error", "Validation error"

    def __init__(self, *problems: FieldProblem, detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def invalid_field(field: str, message: str) -> InvalidFields:
    return InvalidFields(FieldProblem(field, message))
