"""Resend, postroom's addition to Rebilly's contract: a new message made from a sent or failed
one (its content, attachments and credential, unless the request changes them), checked and
stored as a new POST is, and linked to it both ways (`resent-from` / `resends`). The blocklist
applies as to any message: delivery leaves out blocked recipients when it claims the copy."""

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.errors import FieldProblem, InvalidFields, NotFound
from postroom.files import service as files
from postroom.messages import repository, service
from postroom.messages.errors import MessageIsDraft, MessageNotSent
from postroom.messages.models import EmailMessage, MessageStatus
from postroom.messages.schemas import EmailMessageCreate, EmailMessageResend


def _copied_attachment(stored: dict[str, str]) -> dict[str, str]:
    """The file the original sent: an `attachment` (a link) it named becomes the file that link
    named when it was sent, so that the copy sends the same content even if the link changed."""
    file_id = files.attached_file_id(stored)
    if file_id is None:
        return {"resourceType": stored["resourceType"], "resourceId": stored["resourceId"]}
    return {"resourceType": files.RESOURCE_TYPE, "resourceId": file_id}


def _copy(original: EmailMessage, overrides: EmailMessageResend) -> dict[str, Any]:
    """The body of POST /email-messages that makes the copy."""
    body: dict[str, Any] = {
        "from": original.from_address,
        "to": original.to_addresses,
        "cc": original.cc_addresses,
        "bcc": original.bcc_addresses,
        "subject": original.subject,
        "text": original.text,
        "html": original.html,
        "metadata": original.metadata_,
        "attachments": [_copied_attachment(a) for a in original.attachments],
        "credentialHash": original.credential_hash,
        "replyTo": original.reply_to,
        "headers": original.headers,
        "unsubscribeUrl": original.unsubscribe_url,
        "hostedUnsubscribe": bool(original.hosted_unsubscribe),
    }
    given = overrides.model_dump(by_alias=True, include=overrides.model_fields_set)
    body.update(given)
    # Always the request's (its defaults: outbox, at once), never the original's.
    body["status"] = overrides.status
    body["scheduledTime"] = overrides.scheduled_time
    return body


def _checked(body: dict[str, Any]) -> EmailMessageCreate:
    """The copy checked as a POST's body is: the original's values were valid when it was made,
    but the server's rules (developer domains) may have changed since."""
    try:
        return EmailMessageCreate.model_validate(body)
    except ValidationError as error:
        raise InvalidFields(
            *(
                FieldProblem(".".join(str(part) for part in e["loc"]), e["msg"])
                for e in error.errors()
            )
        ) from None


async def resend_message(
    session: AsyncSession,
    organization_id: str,
    message_id: str,
    now: datetime,
    overrides: EmailMessageResend,
    *,
    max_attachment_bytes: int,
    allowed_domains: tuple[str, ...],
    max_schedule: timedelta = timedelta(days=30),
) -> EmailMessage:
    """A new message from the organization's sent or failed message `message_id`, stored (and
    queued, in `outbox`) in the caller's transaction. 404 for a message not the organization's,
    409 for a draft or a message in `outbox`; the copy's checks are a new POST's (a 422 naming
    the field: an attachment whose file is gone, a credential deleted since)."""
    original = await repository.get(session, organization_id, message_id, fresh=True)
    if original is None:
        raise NotFound(f"email message {message_id} not found")
    if original.status == MessageStatus.DRAFT:
        raise MessageIsDraft(
            "a draft has not been sent; send it (PATCH status outbox) instead of resending it"
        )
    if original.status == MessageStatus.OUTBOX:
        raise MessageNotSent(
            "this message is in outbox and not sent yet; only a sent or failed message can be "
            "resent"
        )
    message = await service.check_new_message(
        session,
        organization_id,
        _checked(_copy(original, overrides)),
        now,
        max_attachment_bytes=max_attachment_bytes,
        allowed_domains=allowed_domains,
        max_schedule=max_schedule,
    )
    message.resent_from_id = original.id
    await service.store_new_messages(session, [message])
    return message


async def resends_of(
    session: AsyncSession, organization_id: str, message_ids: Collection[str]
) -> dict[str, list[str]]:
    """The ids of the resends of each of these messages that has any, oldest first: their
    `resends` links."""
    return await repository.resends_of(session, organization_id, message_ids)
