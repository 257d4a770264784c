"""/healthz (the process answers) and /readyz (the database answers and is migrated)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from postroom.db.migrate import is_current

router = APIRouter(tags=["Health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    try:
        migrated = await is_current(request.app.state.engine)
    except Exception:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    if not migrated:
        return JSONResponse({"status": "migrations pending"}, status_code=503)
    return JSONResponse({"status": "ok"})
