"""A message with every field a provider's request must carry, attachments included (files on
disk, as the blob store keeps them), and the limits the transports are built with in tests."""

from dataclasses import replace
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


# A metadata entry for each of the providers' rules: one that fits everywhere (and would be a
# number if Mailgun took it as JSON), an address (not in SES's tag characters), a name longer
# than Postmark's 20 characters, a value longer than its 80, and one under postroom's own key.
METADATA = {
    "order": "42",
    "customer": "jane@example.com",
    "a_rather_long_field_name": "x",
    "note": "y" * 100,
    "postroom_message_id": "spoofed",
}
# As much metadata as the API takes (50 entries of 100-character keys and 2,000-character
# values): more than any provider keeps.
OVERSIZED = {f"k{n:02d}" + "k" * 97: "v" * 2000 for n in range(50)}


@pytest.fixture
def tagged_message(plain_message: OutgoingMessage) -> OutgoingMessage:
    return replace(plain_message, metadata=METADATA)


@pytest.fixture
def oversized_message(plain_message: OutgoingMessage) -> OutgoingMessage:
    return replace(plain_message, metadata=OVERSIZED)
