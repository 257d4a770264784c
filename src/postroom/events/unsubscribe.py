"""HTTP for hosted one-click unsubscribe (RFC 8058): /unsubscribe/{messageId}/{tag}, the link a
message with `hostedUnsubscribe` carries in List-Unsubscribe. No API key: the link's tag, which
only this installation's secret makes, is the authority.

A mail client's one-click POST (body `List-Unsubscribe=One-Click`) unsubscribes: the recipient
goes on the organization's blocklist and an `unsubscribed` event is recorded and fired. A GET
(a person following the link, or a mail scanner fetching it) only shows a page whose button
makes that POST: a link checker must not unsubscribe anyone."""

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from postroom.api.deps import ClockDep, SecretBoxDep, SessionDep, SettingsDep
from postroom.core.unsubscribe_link import genuine
from postroom.errors import NotFound
from postroom.events import service
from postroom.events.models import EventKind, EventSource
from postroom.events.service import ProviderEvent
from postroom.messages import service as messages
from postroom.messages.models import EmailMessage

router = APIRouter(tags=["Unsubscribe"])

# A page of its own: nothing loaded, nothing run; the form posts back to this same URL.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>{title}</h1><p>{text}</p>{form}</body></html>"""


async def _message(
    session: SessionDep, box: SecretBoxDep, message_id: str, tag: str
) -> EmailMessage:
    found = (
        (await messages.messages_for_delivery(session, {message_id})).get(message_id)
        if genuine(box, message_id, tag)
        else None
    )
    if found is None or not found.hosted_unsubscribe:
        raise NotFound("no such unsubscribe link")
    return found


def _recipient(message: EmailMessage) -> str:
    # hostedUnsubscribe is refused for a message to more than one recipient.
    return [*message.to_addresses, *message.cc_addresses, *message.bcc_addresses][0]


@router.get(
    "/unsubscribe/{messageId}/{tag}",
    operation_id="GetUnsubscribePage",
    summary="The page behind a hosted unsubscribe link (its button unsubscribes)",
    response_class=HTMLResponse,
    responses={404: {"description": "Not a link of this server"}},
)
async def unsubscribe_page(
    messageId: str,  # noqa: N803 - the path's own spelling
    tag: str,
    session: SessionDep,
    box: SecretBoxDep,
) -> HTMLResponse:
    message = await _message(session, box, messageId, tag)
    form = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    text = f"Stop mail from {escape(message.from_address)} to {escape(_recipient(message))}?"
    return HTMLResponse(_PAGE.format(title="Unsubscribe", text=text, form=form), headers=_HEADERS)


@router.post(
    "/unsubscribe/{messageId}/{tag}",
    operation_id="PostUnsubscribe",
    summary="One-click unsubscribe (RFC 8058)",
    description="Puts the message's recipient on its organization's blocklist and fires "
    "email-message-unsubscribed. Answered 200 however often it is repeated.",
    response_class=HTMLResponse,
    responses={404: {"description": "Not a link of this server"}},
)
async def unsubscribe(
    messageId: str,  # noqa: N803 - the path's own spelling
    tag: str,
    session: SessionDep,
    box: SecretBoxDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> HTMLResponse:
    message = await _message(session, box, messageId, tag)
    now = clock.now()
    recipient = _recipient(message)
    await service.record(
        session,
        message.organization_id,
        [
            ProviderEvent(
                kind=EventKind.UNSUBSCRIBED,
                source=EventSource.UNSUBSCRIBE,
                occurred_at=now,
                raw={"List-Unsubscribe": "One-Click"},
                recipient=recipient,
                message_id=message.id,
                # Once per message and recipient, however often the link is used.
                provider_event_id=message.id,
            )
        ],
        now=now,
        settings=settings.events,
    )
    text = f"{escape(recipient)} will get no more mail from {escape(message.from_address)}."
    return HTMLResponse(_PAGE.format(title="Unsubscribed", text=text, form=""), headers=_HEADERS)
