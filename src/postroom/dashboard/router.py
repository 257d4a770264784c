"""The dashboard's routes under /dashboard, and its static files."""

from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from postroom.dashboard import messages, setup, sign_in
from postroom.dashboard.security import PREFIX, DashboardRoute

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=DashboardRoute)


@router.get("")
async def home() -> Response:
    return RedirectResponse(f"{PREFIX}/messages", status_code=303)


router.include_router(sign_in.router)
router.include_router(messages.router)
router.include_router(setup.router)


def include_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="dashboard-static",
    )
