"""Idempotency-Key on POST and PATCH: claim the key for this request, or answer as before."""

import re

from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.errors import invalid_field
from postroom.idempotency import service as idempotency

_ORGANIZATION_PREFIX = re.compile(r"^/organizations/[^/]+")


class Replay(Exception):
    """Answers the request with the stored answer of its key's first request."""

    def __init__(self, answer: idempotency.StoredAnswer) -> None:
        super().__init__("idempotent replay")
        self.answer = answer


async def claim_idempotency_key(
    request: Request, session: AsyncSession, organization_id: str
) -> None:
    key = request.headers.get(idempotency.HEADER)
    if key is None or request.method not in {"POST", "PATCH"}:
        return
    if not key.strip() or len(key) > 255:
        raise invalid_field(idempotency.HEADER, "must be 1 to 255 characters")
    # The same request under both URL forms (with and without /organizations/{id}) is one.
    path = _ORGANIZATION_PREFIX.sub("", request.url.path)
    # A handler that streams its body itself (an upload) leaves a digest of it instead.
    streamed = getattr(request.state, "streamed_body_digest", None)
    body = streamed.encode() if streamed is not None else await request.body()
    fingerprint = idempotency.fingerprint(request.method, path, body)
    outcome = await idempotency.begin(
        session, organization_id, key, fingerprint, request.app.state.clock.now()
    )
    if isinstance(outcome, idempotency.StoredAnswer):
        raise Replay(outcome)
    request.state.idempotency = outcome


async def _replay(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    answer = exc.answer
    return Response(
        answer.body,
        status_code=answer.status,
        headers={**answer.headers, "Idempotent-Replayed": "true"},
    )


def install_replay_handler(app: FastAPI) -> None:
    app.add_exception_handler(Replay, _replay)
