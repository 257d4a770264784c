"""The message as it goes out, and its MIME form, built with the standard library's email."""

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, formataddr
from pathlib import Path


@dataclass(frozen=True)
class AttachmentFile:
    """A file to attach: its content stays on disk (the blob store) until the send reads it."""

    filename: str
    content_type: str
    size: int
    path: Path


@dataclass(frozen=True)
class OutgoingMessage:
    id: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    text: str
    html: str
    date: datetime
    sender_name: str | None = None
    attachments: tuple[AttachmentFile, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """The envelope: every recipient, Bcc included (Bcc never appears in a header)."""
        return self.to + self.cc + self.bcc

    @property
    def message_id_header(self) -> str:
        # Stable across attempts, so a receiver can drop the duplicate of a retried message.
        return f"<{self.id}@{self.sender.rpartition('@')[2]}>"

    @property
    def needs_smtputf8(self) -> bool:
        return not all(address.isascii() for address in (self.sender, *self.recipients))


def _one_line(value: str) -> str:
    # The API refuses line breaks in the subject; this keeps any older row from adding headers.
    return " ".join(value.splitlines())


def build_mime(message: OutgoingMessage) -> bytes:
    """RFC 5322 bytes with CRLF line ends: multipart/alternative of the text and HTML bodies."""
    mime = EmailMessage(policy=SMTPUTF8 if message.needs_smtputf8 else SMTP)
    mime["From"] = (
        formataddr((message.sender_name, message.sender)) if message.sender_name else message.sender
    )
    mime["To"] = ", ".join(message.to)
    if message.cc:
        mime["Cc"] = ", ".join(message.cc)
    mime["Subject"] = _one_line(message.subject)
    mime["Date"] = format_datetime(message.date)
    mime["Message-ID"] = message.message_id_header
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mime.add_attachment(
            attachment.path.read_bytes(),
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return mime.as_bytes()
