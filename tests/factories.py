"""Small builders with overridable defaults."""

from typing import Any

import httpx


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
