"""/metrics in Prometheus's text format; the queue and worker gauges are read from the database
then. With several processes sharing their samples (core/metrics_dir.py), the sum of them all."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postroom.api.deps import ClockDep, SessionDep, SettingsDep
from postroom.core import metrics_dir
from postroom.core.metrics import OUTBOX_DEPTH, OUTBOX_OLDEST_DUE_SECONDS, WORKERS_LIVE
from postroom.delivery import service as delivery

router = APIRouter(tags=["Health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(session: SessionDep, clock: ClockDep, settings: SettingsDep) -> Response:
    now = clock.now()
    depth, overdue = await delivery.queue_stats(session, now)
    OUTBOX_DEPTH.set(depth)
    OUTBOX_OLDEST_DUE_SECONDS.set(overdue)
    stale_seconds = settings.delivery.worker_stale_seconds
    WORKERS_LIVE.set(await delivery.live_workers(session, now, stale_seconds))
    shared = metrics_dir.registry()
    body = generate_latest() if shared is None else generate_latest(shared)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
