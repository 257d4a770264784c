"""HTTP for /email-message-batches: many messages created in one request, each answered on
its own."""

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from postroom.api.deps import (
    OrganizationDep,
    clock_of,
    count_more_writes,
    session_of,
    settings_of,
)
from postroom.api.problems import field_problems, problem_responses
from postroom.api.wire import resource_url
from postroom.errors import InvalidFields, PostroomError, invalid_field
from postroom.messages import batches
from postroom.messages.schemas import (
    BatchItemCreated,
    BatchItemRefused,
    EmailMessageBatchCreate,
    EmailMessageBatchRead,
    EmailMessageCreate,
    EmailMessageRead,
    InvalidField,
    ItemProblem,
)

router = APIRouter(prefix="/email-message-batches", tags=["Email messages"])


def _parsed(item: Any) -> EmailMessageCreate | PostroomError:
    """The item as POST /email-messages would take its body, or the 422 that POST would answer,
    its fields named as that POST names them."""
    try:
        return EmailMessageCreate.model_validate(item)
    except ValidationError as error:
        # As FastAPI places a body's errors: a whole item that is not an object is `body`.
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        return InvalidFields(*field_problems(errors))


def _problem(error: PostroomError) -> ItemProblem:
    fields = error.problems if isinstance(error, InvalidFields) else ()
    return ItemProblem(
        type=error.type,
        title=error.title,
        status=error.status,
        detail=error.detail,
        invalidFields=[InvalidField(field=p.field, message=p.message) for p in fields],
    )


@router.post(
    "",
    operation_id="PostEmailMessageBatch",
    summary="Create many email messages",
    description="Creates up to `POSTROOM_LIMITS__MAX_BATCH_MESSAGES` (500 by default) messages "
    "in one transaction. Each item is checked as `POST /email-messages` checks its body; the "
    "answer is 200 with one result per item, in order: `{status: 201, emailMessage}` for a "
    "stored message, `{status: 422, problem}` for an item refused (the problem that POST would "
    "have answered, naming fields inside the item). Valid items are stored even when others "
    "are not. An `Idempotency-Key` covers the whole batch. Counts as one write per message "
    "against the rate limit.",
    responses=problem_responses(400, 401, 413, 422, 429),
)
async def create_email_message_batch(
    body: EmailMessageBatchCreate,
    request: Request,
    organization_id: OrganizationDep,
) -> EmailMessageBatchRead:
    settings = settings_of(request)  # not dependencies, on the ingest path (api/deps.py)
    limit = settings.limits.max_batch_messages
    if len(body.messages) > limit:
        raise invalid_field(
            "messages", f"at most {limit} messages in one batch, not {len(body.messages)}"
        )
    # The one write its dependencies counted, and one more per further message.
    await count_more_writes(request, len(body.messages) - 1)
    outcomes = await batches.create_messages(
        session_of(request),
        organization_id,
        [_parsed(item) for item in body.messages],
        clock_of(request).now(),
        max_attachment_bytes=settings.files.max_message_bytes,
        allowed_domains=settings.server_transport_domains(),
        max_schedule=timedelta(days=settings.delivery.max_schedule_days),
    )
    results: list[BatchItemCreated | BatchItemRefused] = []
    for outcome in outcomes:
        if isinstance(outcome, PostroomError):
            results.append(BatchItemRefused(status=outcome.status, problem=_problem(outcome)))
        else:
            url = resource_url(request, "email-messages", outcome.id)
            results.append(BatchItemCreated(email_message=EmailMessageRead.of(outcome, url)))
    return EmailMessageBatchRead(results=results)
