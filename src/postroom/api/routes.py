"""The one list of routers; served at / and again under /organizations/{organizationId}."""

from fastapi import FastAPI

from postroom.api import health, metrics
from postroom.api.problems import problem_responses
from postroom.auth.router import api_keys, organizations
from postroom.blocklists.router import router as blocklists
from postroom.credentials.router import router as credentials
from postroom.delivery.router import router as delivery
from postroom.events.inbound import router as provider_events
from postroom.events.router import router as message_events
from postroom.events.unsubscribe import router as unsubscribe
from postroom.files.router import attachments_router as attachments
from postroom.files.router import router as files
from postroom.messages.batch_router import router as message_batches
from postroom.messages.router import router as messages
from postroom.senders.router import router as senders
from postroom.senders.router import verifications
from postroom.webhooks.router import events as webhook_events
from postroom.webhooks.router import router as webhooks
from postroom.webhooks.router import tracking as webhook_tracking

# The organization's resources, each router included into the app itself (FastAPI matches a
# request level by level through routers included in routers).
RESOURCES = (
    messages,
    message_batches,
    delivery,
    message_events,
    credentials,
    files,
    attachments,
    senders,
    api_keys,
    organizations,
    webhooks,
    webhook_tracking,
    blocklists,
)
# Every resource route may answer 400 (a NUL in the URL: api/limits.RefuseNulMiddleware) and 422
# (request validation); declared here so that FastAPI does not document its own 422 shape, which
# is not what api/problems.py sends.
RESOURCE_RESPONSES = problem_responses(400, 422)


def include_routes(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in RESOURCES:
        app.include_router(router, responses=RESOURCE_RESPONSES)
    app.include_router(verifications)
    app.include_router(provider_events)
    app.include_router(unsubscribe)
    app.webhooks.include_router(webhook_events)
    # Rebilly's server URL carries the organization; its SDK puts it in every path. The same
    # operations answer there (api/deps.py checks the id), documented once via `servers`.
    for router in RESOURCES:
        app.include_router(
            router,
            prefix="/organizations/{organizationId}",
            responses=RESOURCE_RESPONSES,
            include_in_schema=False,
        )
