"""Small builders with overridable defaults."""

from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.messages.models import EmailMessage


def message_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "sender@example.com",
        "to": ["recipient@example.com"],
        "subject": "Welcome dear customer!",
        "text": "Email message text body",
        "html": "<p>Email message html body</p>",
    }
    body.update(overrides)
    return body


async def make_message(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/email-messages", json=message_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def make_org(
    sessionmaker: async_sessionmaker[AsyncSession], name: str = "other"
) -> auth.NewOrganization:
    async with sessionmaker() as session, session.begin():
        return await auth.create_organization(session, name, SystemClock().now())


async def update_message(
    sessionmaker: async_sessionmaker[AsyncSession], message_id: str, **values: Any
) -> None:
    """Sets columns of a stored message directly: states and times the API cannot reach."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(EmailMessage).where(EmailMessage.id == message_id).values(**values)
        )
