"""/healthz (the process answers) and /readyz (the database answers and is migrated, and mail
that is due has a worker to deliver it)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from postroom.api.deps import ClockDep, SessionDep, SettingsDep
from postroom.db.migrate import is_current
from postroom.delivery import service as delivery
from postroom.delivery.worker import EmbeddedWorker

router = APIRouter(tags=["Health"])


class Readiness(BaseModel):
    """/readyz's answer, ready or not: `status` says which, or why not."""

    status: str = Field(examples=["ok", "no worker seen"])
    error: str | None = Field(None, description="the dead worker's error type")
    stale_seconds: float | None = Field(None, description="the heartbeat window")
    oldest_due_waiting_seconds: float | None = Field(
        None, description="how long the oldest due message has waited"
    )


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    description="503 when the database cannot be reached or its schema is not current, when "
    "this process's delivery worker (`postroom serve`) has died, and when messages are due but "
    "no worker has written a heartbeat within `POSTROOM_DELIVERY__WORKER_STALE_SECONDS`.",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={503: {"model": Readiness, "description": "Not ready"}},
)
async def readyz(
    request: Request, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> JSONResponse:
    worker: EmbeddedWorker | None = getattr(request.app.state, "embedded_worker", None)
    if worker is not None and worker.failure is not None:
        return JSONResponse(
            {"status": "delivery worker died", "error": type(worker.failure).__name__},
            status_code=503,
        )
    try:
        migrated = await is_current(request.app.state.engine)
    except Exception:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    if not migrated:
        return JSONResponse({"status": "migrations pending"}, status_code=503)
    stale_seconds = settings.delivery.worker_stale_seconds
    now = clock.now()
    try:
        waiting = await delivery.waiting_seconds(session, now)
        live = (
            await delivery.live_workers(session, now, stale_seconds) if waiting is not None else 0
        )
    except Exception:
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    if waiting is not None and not live:
        return JSONResponse(
            {
                "status": "no worker seen",
                "stale_seconds": stale_seconds,
                "oldest_due_waiting_seconds": waiting,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok"})
