"""Small builders with overridable defaults."""

import os
import struct
import zlib
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.core.ids import new_id
from postroom.delivery.models import QueuedMessage
from postroom.delivery.queue import delivery_key
from postroom.messages import service as messages
from postroom.messages.models import EmailMessage, MessageStatus


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
    """Sets columns of a stored message directly: states and times the API cannot reach. A
    message set out of `outbox` leaves the delivery queue, as it would through delivery, and the
    kept counts are rebuilt (a status may have changed behind the service's back)."""
    async with sessionmaker() as session, session.begin():
        organization_id = await session.scalar(
            update(EmailMessage)
            .where(EmailMessage.id == message_id)
            .values(**values)
            .returning(EmailMessage.organization_id)
        )
        if values.get("status", MessageStatus.OUTBOX) != MessageStatus.OUTBOX:
            await session.execute(
                delete(QueuedMessage).where(QueuedMessage.message_id == message_id)
            )
        if organization_id is not None:
            await messages.recount(session, organization_id)


async def queue_messages(
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: str,
    count: int,
    due: datetime,
    **values: Any,
) -> list[str]:
    """`count` messages in outbox, due at `due`, inserted (and queued) in two statements (fast
    enough for tens of thousands); `values` sets other columns (e.g. credential_hash). Their ids,
    in order."""
    rows = [
        {
            "id": new_id("mail_msg_"),
            "organization_id": organization_id,
            "status": MessageStatus.OUTBOX,
            "from_address": "sender@example.com",
            "to_addresses": [f"user{n}@example.com"],
            "cc_addresses": [],
            "bcc_addresses": [],
            "subject": f"Message {n}",
            "text": "text",
            "html": "<p>html</p>",
            "attachments": [],
            "initiated_at": due,
            "created_at": due,
            "updated_at": due,
            "search_text": "",
            **values,
        }
        for n in range(count)
    ]
    queued = [
        {
            "message_id": row["id"],
            "delivery_key": delivery_key(
                organization_id, row.get("credential_hash") or row.get("sender_credential_id")
            ),
            "due_at": due,
            "attempt_count": 0,
        }
        for row in rows
    ]
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(EmailMessage), rows)
        await session.execute(insert(QueuedMessage), queued)
        await messages.recount(session, organization_id)
    return [str(row["id"]) for row in rows]


async def queued(
    sessionmaker: async_sessionmaker[AsyncSession], message_id: str
) -> QueuedMessage | None:
    """The message's row in the delivery queue (None once it has left `outbox`)."""
    async with sessionmaker() as session:
        return await session.get(QueuedMessage, message_id)


async def update_queued(
    sessionmaker: async_sessionmaker[AsyncSession], message_id: str | None = None, **values: Any
) -> None:
    """Sets columns of a queue row (of every one, with no id): due times the API cannot reach."""
    statement = update(QueuedMessage).values(**values)
    if message_id is not None:
        statement = statement.where(QueuedMessage.message_id == message_id)
    async with sessionmaker() as session, session.begin():
        await session.execute(statement)


def png_bytes(size: int = 0) -> bytes:
    """A valid 1x1 PNG, unique each call (random text chunk), padded to about `size` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    padding = os.urandom(max(16, size - 100))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + padding.hex().encode()[: len(padding)])
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(size: int = 0) -> bytes:
    """A minimal PDF, unique each call, padded with binary stream data to about `size` bytes."""
    stream = os.urandom(max(16, size - 300))
    return (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
        + f"3 0 obj\n<< /Length {len(stream)} >>\nstream\n".encode()
        + stream
        + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


async def upload_file(
    client: httpx.AsyncClient,
    content: bytes | None = None,
    filename: str = "file.png",
    **fields: Any,
) -> dict[str, Any]:
    """Uploads as multipart; `fields` are the other form parts (name, description, tags)."""
    response = await client.post(
        "/files",
        files={"file": (filename, png_bytes() if content is None else content)},
        data=fields,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
