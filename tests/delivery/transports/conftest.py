"""A message with every field a provider's request must carry, attachments included (files on
disk, as the blob store keeps them), and the limits the transports are built with in tests."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from postroom.delivery.mime import AttachmentFile, OutgoingMessage
from postroom.delivery.transports.http import HttpLimits

PDF = b"%PDF-1.4\n\x00\xff\xfe binary \r\n bytes\n%%EOF\n"
CSV = b"name,amount\nAcme,12.50\n"
LIMITS = HttpLimits(connect_timeout=10, timeout=10, connections=2)


@pytest.fixture
def message(tmp_path: Path) -> OutgoingMessage:
    (tmp_path / "blob-pdf").write_bytes(PDF)
    (tmp_path / "blob-csv").write_bytes(CSV)
    return OutgoingMessage(
        id="mail_msg_01JDTESTMESSAGE0000000000",
        sender="billing@example.com",
        to=("to@example.com", "second@example.com"),
        cc=("cc@example.com",),
        bcc=("hidden@example.com",),
        subject="Your invoice",
        text="Plain body",
        html="<p>HTML body</p>",
        date=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        sender_name="Acme Billing",
        attachments=(
            AttachmentFile("invoice.pdf", "application/pdf", len(PDF), tmp_path / "blob-pdf"),
            AttachmentFile("amounts.csv", "text/csv", len(CSV), tmp_path / "blob-csv"),
        ),
    )


@pytest.fixture
def plain_message() -> OutgoingMessage:
    """The least a message has: one recipient, no name, no cc/bcc, no attachments."""
    return OutgoingMessage(
        id="mail_msg_01JDTESTMESSAGE0000000001",
        sender="app@example.com",
        to=("one@example.com",),
        cc=(),
        bcc=(),
        subject="Hello",
        text="Hi",
        html="<p>Hi</p>",
        date=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    )
