"""The mail that proves a tenant holds the address of an email delivery setting: a one-time
link, sent by postroom's own organization through the server-wide transport (a tenant's own
server would hand the tenant the token)."""

from datetime import datetime
from html import escape

from sqlalchemy.ext.asyncio import AsyncSession

from postroom.auth.service import SYSTEM_ORGANIZATION_ID
from postroom.messages import service as messages
from postroom.senders.service import Pending

PATH = "/email-delivery-setting-verifications"


def verification_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}/{token}"


async def mail_token(
    session: AsyncSession, pending: Pending, *, sender: str, base_url: str, now: datetime
) -> None:
    """Queues the verification mail for a newly issued token, in the caller's transaction."""
    if pending.token is None:
        return
    setting = pending.setting
    url = verification_url(base_url, pending.token)
    expires = setting.verification_expires_at
    until = f"{expires:%Y-%m-%d %H:%M} UTC" if expires else "it is used"
    address = setting.from_address
    text = (
        f"Someone asked to send email as {address} through postroom.\n\n"
        f"If that was you, open this link and confirm:\n{url}\n\n"
        f"(or confirm from a terminal: curl -X PUT {url})\n\n"
        f"The link works once, until {until}. If you did not ask for this, ignore this mail: "
        "nothing is sent as you unless it is confirmed.\n"
    )
    html = (
        f"<p>Someone asked to send email as <b>{escape(address)}</b> through postroom.</p>\n"
        f'<p>If that was you, <a href="{escape(url)}">open this link and confirm</a>.</p>\n'
        f"<p>The link works once, until {escape(until)}. If you did not ask for this, ignore "
        "this mail: nothing is sent as you unless it is confirmed.</p>\n"
    )
    await messages.queue_notice(
        session,
        SYSTEM_ORGANIZATION_ID,
        sender=sender,
        to=address,
        subject=f"Confirm sending as {address}",
        text=text,
        html=html,
        now=now,
    )


def confirm_page(address: str | None, *, confirmed: bool) -> str:
    """The page behind the mailed link. Opening it changes nothing (mail scanners open links);
    its button does."""
    if confirmed and address:
        body = f"<p>{escape(address)} is verified: postroom may now send as it.</p>"
    elif address is None:
        body = "<p>This verification link is not valid (used, expired or replaced).</p>"
    else:
        body = (
            f"<p>Confirm that postroom may send email as <b>{escape(address)}</b>.</p>\n"
            '<form method="post"><button type="submit">Confirm</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>postroom: sender verification</title></head>"
        f"<body>{body}</body></html>"
    )
