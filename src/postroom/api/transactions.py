"""One database transaction per request, committed just before the response starts.

A client that reads 201 knows its row is durable; any error (a problem response, an exception)
rolls everything back. A request with an Idempotency-Key has its answer buffered and stored in
the same transaction as the resource it made, so neither ever exists without the other.
"""

from dataclasses import replace
from datetime import timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.api.failures import INTERNAL, NO_CONNECTION, Failure, failure_of, report, send_problem
from postroom.db.engine import ConnectionGate
from postroom.idempotency import service as idempotency

_READS = {"GET", "HEAD"}
# Routes that never touch the database: no session, no transaction.
_NO_DATABASE = {"/healthz"}
# Headers of a stored answer that a replay gives again.
_REPLAYED = {"content-type", "location"}


class TransactionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _NO_DATABASE:
            await self.app(scope, receive, send)
            return
        gate: ConnectionGate | None = scope["app"].state.connection_gate
        if gate is None:
            await self._in_transaction(scope, receive, send)
            return
        try:
            await gate.enter()
        except TimeoutError as error:
            report(NO_CONNECTION, error, {"method": scope["method"]})
            await send_problem(send, NO_CONNECTION)
            return
        try:
            await self._in_transaction(scope, receive, send)
        finally:
            gate.leave()

    async def _in_transaction(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        fastapi_app = scope["app"]
        # GET and HEAD only read: on SQLite their transaction takes no write lock.
        reads = scope["method"] in _READS
        makers = fastapi_app.state
        session = (makers.read_sessionmaker if reads else makers.sessionmaker)()
        try:
            state["session"] = session
            start: Message = {}
            parts: list[bytes] = []
            buffering = replaced = False

            async def finish(
                status: int, body: bytes, headers: list[tuple[bytes, bytes]]
            ) -> Failure | None:
                """Commit (with any idempotent answer) or roll back; why the commit failed."""
                if status >= 400:
                    await session.rollback()
                    return None
                try:
                    claimed = state.get("idempotency")
                    if isinstance(claimed, idempotency.Claimed):
                        await _store_answer(fastapi_app, session, claimed, status, body, headers)
                    if session.in_transaction():
                        await session.commit()
                except Exception as error:
                    failure = failure_of(error)
                    route = getattr(scope.get("route"), "path", "unmatched")
                    report(failure, error, {"route": route, "commit": True})
                    await session.rollback()
                    return _not_saved(failure)
                return None

            async def send_after_commit(message: Message) -> None:
                nonlocal start, buffering, replaced
                if message["type"] == "http.response.start":
                    start = message
                    # An idempotent answer is stored with its body, so that waits for the body.
                    buffering = isinstance(state.get("idempotency"), idempotency.Claimed)
                    if not buffering:
                        failed = await finish(message["status"], b"", [])
                        replaced = failed is not None
                        await (send(message) if failed is None else send_problem(send, failed))
                    return
                if replaced or not buffering:
                    if not replaced:
                        await send(message)
                    return
                parts.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(parts)
                failed = await finish(start["status"], body, list(start["headers"]))
                if failed is not None:
                    await send_problem(send, failed)
                    return
                await send(start)
                await send({"type": "http.response.body", "body": body})

            await self.app(scope, receive, send_after_commit)
        finally:
            # Only a session still in a transaction holds a connection (an exception cut the
            # request short): closing one that holds none (committed, rolled back, or never used,
            # as by a POST whose key is cached) would spawn a greenlet to do nothing, ~16 µs.
            if session.in_transaction():
                await session.close()


async def _store_answer(
    app: Any,
    session: Any,
    claimed: idempotency.Claimed,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:
    kept = {k.decode().lower(): v.decode() for k, v in headers if k.decode().lower() in _REPLAYED}
    answer = idempotency.StoredAnswer(status, kept, body.decode())
    retention = timedelta(hours=app.state.settings.limits.idempotency_retention_hours)
    await idempotency.complete(session, claimed, answer, app.state.clock.now(), retention)


def _not_saved(failure: Failure) -> Failure:
    if failure is INTERNAL:
        return replace(INTERNAL, detail="the change could not be saved; nothing was stored")
    return failure
