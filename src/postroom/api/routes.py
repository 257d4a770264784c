"""The one list of routers; served at / and again under /organizations/{organizationId}."""

from fastapi import APIRouter, FastAPI

from postroom.api import health
from postroom.credentials.router import router as credentials
from postroom.delivery.router import router as delivery
from postroom.messages.router import router as messages
from postroom.senders.router import router as senders

resources = APIRouter()
resources.include_router(messages)
resources.include_router(delivery)
resources.include_router(credentials)
resources.include_router(senders)


def include_routes(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(resources)
    # Rebilly's server URL carries the organization; its SDK puts it in every path. The same
    # operations answer there (api/deps.py checks the id), documented once via `servers`.
    app.include_router(resources, prefix="/organizations/{organizationId}", include_in_schema=False)
