"""The message every benchmark sends: a realistic receipt of about 3 KB, text and HTML, and the
same message as rows queued straight into the outbox (COPY) for the delivery runs."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from postroom.core.ids import new_id
from postroom.delivery.mime import OutgoingMessage

SENDER = "billing@shop.example.com"
SUBJECT = "Your receipt for order #A-104427"

_ITEMS = [
    ("Merino wool sweater, navy, M", 1, "89.00"),
    ("Organic cotton T-shirt, white, M", 3, "57.00"),
    ("Leather belt, brown, 90 cm", 1, "45.00"),
    ("Wool socks, 3 pairs", 2, "24.00"),
]

TEXT = (
    "Hello Zoë,\n\n"
    "Thank you for your order #A-104427, placed on 24 November 2026. We have received your\n"
    "payment and are getting your parcel ready. You will get another email with the tracking\n"
    "number as soon as it leaves our warehouse.\n\n"
    "Order summary\n"
    "-------------\n"
    + "".join(f"{qty} x {name:<40} € {price:>8}\n" for name, qty, price in _ITEMS)
    + "\nSubtotal:                                      € 215.00\n"
    "Shipping (standard, 2-4 business days):        €   0.00\n"
    "VAT included (21%):                            €  37.31\n"
    "Total paid (Visa ending in 4242):              € 215.00\n\n"
    "Shipping to:\n"
    "Zoë Müller\nKeizersgracht 123\n1015 CJ Amsterdam\nNetherlands\n\n"
    "You can see your order at any time at https://shop.example.com/account/orders/A-104427\n"
    "If something is not right, reply to this email or write to support@shop.example.com and\n"
    "we will sort it out. You can return any item within 30 days for a full refund.\n\n"
    "Thank you for shopping with us,\n"
    "The Example Shop team\n\n"
    "--\n"
    "Example Shop B.V., Keizersgracht 1, 1015 CJ Amsterdam, KvK 12345678, VAT NL123456789B01\n"
    "You receive this email because you placed an order. It is not a newsletter.\n"
)

HTML = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<title>Your receipt</title></head>\n"
    '<body style="font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0;">\n'
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0">\n'
    '<tr><td style="padding: 24px;">\n'
    '<h1 style="font-size: 20px;">Thank you for your order, Zoë</h1>\n'
    "<p>We have received your payment for order <strong>#A-104427</strong> and are getting\n"
    "your parcel ready. You will get another email with the tracking number soon.</p>\n"
    '<table cellpadding="6" cellspacing="0" style="border-collapse: collapse; width: 100%;">\n'
    '<tr><th align="left">Item</th><th>Qty</th><th align="right">Price</th></tr>\n'
    + "".join(
        f'<tr><td>{name}</td><td align="center">{qty}</td>'
        f'<td align="right">€&nbsp;{price}</td></tr>\n'
        for name, qty, price in _ITEMS
    )
    + '<tr><td colspan="2">Shipping</td><td align="right">€&nbsp;0.00</td></tr>\n'
    '<tr><td colspan="2"><strong>Total paid</strong></td>'
    '<td align="right"><strong>€&nbsp;215.00</strong></td></tr>\n'
    "</table>\n"
    "<p>Shipping to: Zoë Müller, Keizersgracht 123, 1015 CJ Amsterdam, Netherlands</p>\n"
    '<p><a href="https://shop.example.com/account/orders/A-104427" '
    'style="background: #0b5; color: #fff; padding: 10px 16px; text-decoration: none;">'
    "View your order</a></p>\n"
    "<p>Questions? Reply to this email or write to "
    '<a href="mailto:support@shop.example.com">support@shop.example.com</a>.</p>\n'
    '<p style="font-size: 12px; color: #777;">Example Shop B.V., Keizersgracht 1, '
    "1015 CJ Amsterdam. You receive this email because you placed an order.</p>\n"
    "</td></tr></table>\n</body></html>\n"
)


def recipient(n: int) -> str:
    return f"customer{n}@example.org"


def request_body() -> bytes:
    """POST /email-messages as a client sends it: queued at once (status outbox)."""
    return json.dumps(_message()).encode()


def batch_body(size: int) -> bytes:
    """POST /email-message-batches of `size` of the same message."""
    return json.dumps({"messages": [_message()] * size}).encode()


def _message() -> dict[str, Any]:
    return {
        "from": SENDER,
        "to": [recipient(1)],
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "status": "outbox",
        "metadata": {"orderId": "A-104427"},
    }


COLUMNS = [
    "id",
    "organization_id",
    "status",
    "from_address",
    "to_addresses",
    "cc_addresses",
    "bcc_addresses",
    "subject",
    "text",
    "html",
    "metadata",
    "attachments",
    "initiated_at",
    "created_at",
    "updated_at",
    "search_text",
]


def outbox_rows(organization_id: str, count: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """`count` messages as the API stores them in `outbox` (COPY records, COLUMNS order)."""
    for n in range(count):
        to = recipient(n)
        yield (
            new_id("mail_msg_"),
            organization_id,
            "outbox",
            SENDER,
            json.dumps([to]),
            "[]",
            "[]",
            SUBJECT,
            TEXT,
            HTML,
            '{"orderId": "A-104427"}',
            "[]",
            now,
            now,
            now,
            f"{SUBJECT} {SENDER} {to}".lower(),
        )


QUEUE_COLUMNS = ["message_id", "delivery_key", "due_at", "attempt_count"]


def queue_rows(messages: list[tuple[Any, ...]], now: datetime) -> list[tuple[Any, ...]]:
    """The delivery queue's row of each of `outbox_rows`' messages (server-wide transport)."""
    return [(row[0], f"{row[1]} ", now, 0) for row in messages]


def outgoing(message_id: str, n: int, now: datetime | None = None) -> OutgoingMessage:
    """The same message as the worker hands it to a transport."""
    return OutgoingMessage(
        id=message_id,
        sender=SENDER,
        to=(recipient(n),),
        cc=(),
        bcc=(),
        subject=SUBJECT,
        text=TEXT,
        html=HTML,
        date=now or datetime.now(UTC),
    )
