"""The message as it goes out, and its MIME form, built with the standard library's email."""

import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.policy import SMTP, SMTPUTF8, Compat32
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
    """RFC 5322 bytes with CRLF line ends: multipart/alternative of the text and HTML bodies.

    Two builders, both the standard library's email package. The common message (ASCII
    addresses, no attachments) is built with the compat32 `Message` API: bodies encoded once by
    us, headers stored as given (each one a single line) and folded by the generator. That is
    about ten times cheaper than `EmailMessage`, whose header registry parses every header we
    set (and sets) again: 2.5-9 ms a message, more than the whole SMTP exchange. Anything else
    (attachments, SMTPUTF8 addresses, a subject too long to stay unfolded) takes `EmailMessage`.
    """
    if message.attachments or message.needs_smtputf8 or len(message.subject) > _MAX_SUBJECT:
        return _build_email_message(message)
    return _build_compat32(message)


# "Subject: " and up to this many characters stay within RFC 5322's 998 per line even when
# the generator finds no space to fold at.
_MAX_SUBJECT = 900
_LINE = 78  # RFC 5322's "SHOULD" line length, the stdlib's default


class _Policy(Compat32):
    """compat32, CRLF line ends, and no Header object for a header that fits one line as is."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if value.isascii() and len(name) + 2 + len(value) <= _LINE:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_COMPAT32_SMTP = _Policy(linesep="\r\n", max_line_length=_LINE)


def _build_compat32(message: OutgoingMessage) -> bytes:
    root = Message(policy=_COMPAT32_SMTP)
    # Every value is made one line here: compat32 would write a line break as it is.
    sender = (
        formataddr((message.sender_name, message.sender), charset="utf-8")
        if message.sender_name
        else message.sender
    )
    root["From"] = _one_line(sender)
    root["To"] = _one_line(", ".join(message.to))
    if message.cc:
        root["Cc"] = _one_line(", ".join(message.cc))
    root["Subject"] = _one_line(message.subject)
    root["Date"] = format_datetime(message.date)
    root["Message-ID"] = _one_line(message.message_id_header)
    root["MIME-Version"] = "1.0"
    # Our own boundary: 128 random bits cannot occur in a body written before it was drawn, and
    # "=_" never occurs in quoted-printable. (The generator would otherwise draw one and compile
    # a regular expression to search every body for it: a third of this function's time.)
    root["Content-Type"] = f'multipart/alternative; boundary="=_{secrets.token_hex(16)}"'
    root.set_payload([_text_part(message.text, "plain"), _text_part(message.html, "html")])
    return root.as_bytes(policy=_COMPAT32_SMTP)


def _text_part(text: str, subtype: str) -> Message:
    """7bit when ASCII lines of at most 78 characters (as the stdlib's heuristic decides);
    quoted-printable otherwise, so that the message is 7-bit clean whatever the server."""
    part = Message(policy=_COMPAT32_SMTP)
    lines = text.splitlines()
    body = "\n".join(lines) + "\n"
    if body.isascii() and max(map(len, lines), default=0) <= _LINE:
        encoding = "7bit"
    else:
        encoding = "quoted-printable"
        body = binascii.b2a_qp(body.encode(), istext=True).decode("ascii")
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(body)
    return part


def _build_email_message(message: OutgoingMessage) -> bytes:
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
