"""HTTP for providers' event webhooks: POST /inbound/{credentialId}/{tag}, one unguessable URL
per credential (the tag is an HMAC of its id under the server's secret, so it needs no storage
and is shown on the credential as `eventsUrl`). No API key: the provider's own signing, checked
by the credential type's module before anything is recorded, is what authenticates a request.

    bad URL, unknown or mail-less credential      404
    signature missing or wrong, stale, replayed   401 / 403, nothing recorded
    an event for a message postroom does not know 200 and a log line (the provider stops)
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import APIRouter, Request, Response

from postroom.api.deps import ClockDep, SecretBoxDep, SessionDep, SettingsDep
from postroom.api.problems import problem_responses
from postroom.credentials import service as credentials
from postroom.credentials.service import DeliveryCredential
from postroom.errors import NotFound
from postroom.events import service
from postroom.events.service import ProviderEvent
from postroom.settings import EventSettings

log = logging.getLogger(__name__)

TAG_PURPOSE = "inbound-events"


@dataclass(frozen=True)
class InboundRequest:
    """A provider's request as its module sees it: the raw bytes (signatures cover them)."""

    credential: DeliveryCredential
    body: bytes
    headers: Mapping[str, str]  # case-insensitive
    query: Mapping[str, str]
    now: datetime
    settings: EventSettings
    accept_once: Callable[[str], Awaitable[bool]] = field(repr=False)
    """Records a one-time token (Mailgun's); False if this credential has seen it before."""


# A credential type's module: verifies the request (raising errors.Unauthorized or Forbidden)
# and returns its events. Filled in by events/<provider>.py.
Parser = Callable[[InboundRequest], Awaitable[list[ProviderEvent]]]
PARSERS: dict[str, Parser] = {}


def events_path(credential_id: str, tag: str) -> str:
    return f"inbound/{credential_id}/{tag}"


router = APIRouter(tags=["Provider events"])


@router.post(
    "/inbound/{credentialId}/{tag}",
    operation_id="PostProviderEvents",
    summary="Receive a mail service's events (its event webhook)",
    description="Point the provider's event webhook at the credential's `eventsUrl`. SendGrid "
    "(signed event webhook), Mailgun (webhook signing key), Postmark (basic auth in the URL) and "
    "Amazon SES through SNS (signed notifications) are verified before anything is recorded.",
    status_code=200,
    response_class=Response,
    responses={
        200: {"description": "Taken (recorded, or ignored when it names no known message)"},
        **problem_responses(400, 401, 403, 404, 503),
    },
)
async def receive_provider_events(
    credentialId: str,  # noqa: N803 - the path's own spelling
    tag: str,
    request: Request,
    session: SessionDep,
    box: SecretBoxDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> Response:
    if not box.verify_tag(TAG_PURPOSE, credentialId, tag):
        raise NotFound("no such event endpoint")
    found = await credentials.load_for_delivery(session, {credentialId}, box)
    credential = found.get(credentialId)
    parse = PARSERS.get(credential.type) if credential is not None else None
    if credential is None or parse is None:
        raise NotFound("no such event endpoint")
    now = clock.now()
    keep = timedelta(seconds=2 * settings.events.timestamp_tolerance_seconds)

    async def accept_once(token: str) -> bool:
        return await service.accept_once(session, credentialId, token, now=now, keep=keep)

    events = await parse(
        InboundRequest(
            credential=credential,
            body=await request.body(),
            headers=request.headers,
            query=request.query_params,
            now=now,
            settings=settings.events,
            accept_once=accept_once,
        )
    )
    recorded = await service.record(
        session, credential.organization_id, events, now=now, settings=settings.events
    )
    log.info(
        "provider events received",
        extra={
            "credential_id": credentialId,
            "events": len(events),
            "recorded": len(recorded.recorded),
            "unknown": recorded.unknown,
            "duplicates": recorded.duplicates,
        },
    )
    return Response(status_code=200)


from postroom.events import ses  # noqa: E402, F401 - registers its parser
