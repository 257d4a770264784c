"""/metrics in Prometheus's text format; the queue gauges are read from the database then."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postroom.api.deps import ClockDep, SessionDep
from postroom.core.metrics import OUTBOX_DEPTH, OUTBOX_OLDEST_DUE_SECONDS
from postroom.delivery import service as delivery

router = APIRouter(tags=["Health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(session: SessionDep, clock: ClockDep) -> Response:
    depth, overdue = await delivery.queue_stats(session, clock.now())
    OUTBOX_DEPTH.set(depth)
    OUTBOX_OLDEST_DUE_SECONDS.set(overdue)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
