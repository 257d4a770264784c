"""HTTP for provider events: GET /email-messages/{id}/events."""

from fastapi import APIRouter

from postroom.api.deps import OrganizationDep, SessionDep
from postroom.api.problems import problem_responses
from postroom.events import service
from postroom.events.schemas import MessageEventRead

router = APIRouter(prefix="/email-messages", tags=["Email messages"])


@router.get(
    "/{id}/events",
    operation_id="GetEmailMessageEvents",
    summary="Retrieve what happened to an email message after it was sent",
    description="Delivered, deferred, bounced and complained events, oldest first, as the mail "
    "service (its event webhook) or a bounce sent back over SMTP reported them.",
    responses=problem_responses(401, 404),
)
async def list_message_events(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> list[MessageEventRead]:
    return [MessageEventRead.of(e) for e in await service.list_events(session, organization_id, id)]
