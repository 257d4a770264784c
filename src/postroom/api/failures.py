"""What an error nobody handled becomes: the status a client can act on, said once.

    database unreachable or refusing connections  -> 503 + Retry-After (send it again later)
    no database connection free in time           -> 503 + Retry-After
    a connection found dead and replaced          -> 503 + Retry-After: 1 (api/problems.py)
    disk (or database) full                       -> 507 (delete something; reads still work)
    anything else                                 -> 500, logged once with its traceback

`UnhandledErrorMiddleware` answers these with a problem document itself, so the exception
never reaches Starlette's ServerErrorMiddleware and uvicorn, which would log it a second time and
close the keep-alive connection."""

import errno
import json
import logging
import socket
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.db.driver import ConnectionReplaced
from postroom.errors import PROBLEM_BASE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    status: int
    slug: str
    title: str
    detail: str
    retry_after: int | None = None

    def problem(self) -> dict[str, object]:
        return {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


DATABASE_UNAVAILABLE = Failure(
    503,
    "database-unavailable",
    "Service unavailable",
    "the database cannot be reached; nothing was stored, send the request again later",
    retry_after=5,
)
NO_CONNECTION = Failure(
    503,
    "overloaded",
    "Service unavailable",
    "no database connection came free in time; nothing was stored, send the request again",
    retry_after=2,
)
CONNECTION_REPLACED = Failure(
    503,
    "database-unavailable",
    "Service unavailable",
    "the connection to the database was lost and has been replaced; nothing was stored, "
    "send the request again",
    retry_after=1,
)
STORAGE_FULL = Failure(
    507,
    "insufficient-storage",
    "Insufficient storage",
    "the server is out of disk space; nothing was stored. Deleting files still works",
)
INTERNAL = Failure(
    500, "internal-error", "Internal server error", "the server could not complete the request"
)

# SQLSTATE classes and messages of an unreachable or full database, by driver.
# connection exception; operator intervention (shutdown, starting up); too many connections
_UNREACHABLE_SQLSTATES = ("08", "57P", "53300")
_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
}
_FULL_SQLSTATES = ("53100",)  # disk_full
_SQLITE_UNAVAILABLE = ("unable to open database file", "readonly database", "disk i/o error")
_SQLITE_FULL = ("database or disk is full",)


def _sqlstate(error: BaseException) -> str:
    return str(getattr(error, "sqlstate", None) or getattr(error, "pgcode", None) or "")


def failure_of(error: BaseException) -> Failure:
    """The answer for an error no handler took (see the module's docstring)."""
    if isinstance(error, ConnectionReplaced):
        return CONNECTION_REPLACED
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return CONNECTION_REPLACED
        original = error.orig if error.orig is not None else error
        if isinstance(original, DBAPIError):  # wrapped twice by the asyncpg adapter
            original = original.orig or original
        return _failure_of_driver_error(original)
    return _failure_of_driver_error(error)


def _failure_of_driver_error(error: BaseException) -> Failure:
    cause = getattr(error, "__cause__", None)
    state = _sqlstate(error) or (_sqlstate(cause) if cause is not None else "")
    message = str(error).lower()
    if state.startswith(_FULL_SQLSTATES) or any(m in message for m in _SQLITE_FULL):
        return STORAGE_FULL
    if isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT}:
        return STORAGE_FULL
    if state.startswith(_UNREACHABLE_SQLSTATES) or any(m in message for m in _SQLITE_UNAVAILABLE):
        return DATABASE_UNAVAILABLE
    # Connecting: refused, reset, unknown host, timed out (asyncpg raises these as they come).
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror) or (
        isinstance(error, OSError) and error.errno in _UNREACHABLE_ERRNOS
    ):
        return DATABASE_UNAVAILABLE
    if cause is not None and cause is not error and isinstance(cause, OSError):
        return _failure_of_driver_error(cause)
    return INTERNAL


def report(failure: Failure, error: BaseException, where: dict[str, object]) -> None:
    """One log line: an outage or a full disk is a warning without a traceback (the cause is
    named); anything else is an error with it."""
    if failure is INTERNAL:
        log.error("unhandled error", exc_info=error, extra=where)
    else:
        log.warning(
            failure.detail.split(";")[0],
            extra={**where, "status": failure.status, "error": type(error).__name__},
        )


async def send_problem(send: Send, failure: Failure) -> None:
    body = json.dumps(failure.problem()).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in failure.headers().items()]
    await send({"type": "http.response.start", "status": failure.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class UnhandledErrorMiddleware:
    """The outermost of postroom's middleware: an exception nothing else handled is answered
    here (if the response has not started) and not raised further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            failure = failure_of(error)
            route = getattr(scope.get("route"), "path", "unmatched")
            report(failure, error, {"route": route, "method": scope["method"]})
            if started:
                # Half an answer went out: only closing the connection tells the client.
                raise
            await send_problem(send, failure)
