"""HTTP for a message's delivery history: GET /email-messages/{id}/attempts."""

from fastapi import APIRouter

from postroom.api.deps import OrganizationDep, SessionDep
from postroom.api.problems import problem_responses
from postroom.delivery import service
from postroom.delivery.schemas import DeliveryAttemptRead

router = APIRouter(prefix="/email-messages", tags=["Email messages"])


@router.get(
    "/{id}/attempts",
    operation_id="GetEmailMessageAttempts",
    summary="Retrieve the delivery attempts of an email message",
    description="Every attempt, oldest first: when, through what, and what the service said.",
    responses=problem_responses(401, 404),
)
async def list_delivery_attempts(
    id: str, session: SessionDep, organization_id: OrganizationDep
) -> list[DeliveryAttemptRead]:
    attempts = await service.list_attempts(session, organization_id, id)
    return [DeliveryAttemptRead.of(a) for a in attempts]
