"""The message as it goes out, and its MIME form, built with the standard library's email."""

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import BinaryIO


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


# Raw bytes of an attachment read at a time: a multiple of 57, so that each read encodes to
# whole 76-character base64 lines (RFC 2045), and ~300 KiB of base64 goes out per chunk.
_RAW_CHUNK = 57 * 4096


class MimeStream:
    """The message as RFC 5322 bytes with CRLF line ends, in chunks, so that an attachment is
    never held whole in memory: multipart/alternative of the text and HTML bodies, inside a
    multipart/mixed with each attachment as a base64 part named by its filename.

    The standard library's email package builds the headers and structure, with a unique
    marker as each attachment's body; iterating yields that text with each marker replaced by
    the file's base64 lines, read from disk a chunk at a time. The attachment files are opened
    here, so a missing one fails before anything is sent (OSError); `close()` closes them.
    """

    def __init__(self, message: OutgoingMessage) -> None:
        token = secrets.token_hex(16)
        markers = [f"postroom-attachment-{token}-{i}" for i in range(len(message.attachments))]
        text = _skeleton(message, markers)
        self._segments: list[bytes] = []
        for marker in markers:
            before, text = text.split(marker.encode("ascii"), 1)
            self._segments.append(before)
        self._segments.append(text)
        self._files: list[BinaryIO] = []
        try:
            for attachment in message.attachments:
                self._files.append(attachment.path.open("rb"))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "MimeStream":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for handle in self._files:
            handle.close()

    def __iter__(self) -> Iterator[bytes]:
        for segment, handle in zip(self._segments, self._files, strict=False):
            yield segment
            yield from _base64_lines(handle)
        yield self._segments[-1]


def _base64_lines(handle: BinaryIO) -> Iterator[bytes]:
    handle.seek(0)
    first = True
    while raw := handle.read(_RAW_CHUNK):
        lines = base64.encodebytes(raw).rstrip(b"\n").replace(b"\n", b"\r\n")
        yield lines if first else b"\r\n" + lines
        first = False


def _skeleton(message: OutgoingMessage, markers: list[str]) -> bytes:
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
    if message.attachments:
        mime.make_mixed()
    for attachment, marker in zip(message.attachments, markers, strict=True):
        mime.attach(_attachment_part(attachment, marker, mime.policy))
    return mime.as_bytes()


def _attachment_part(attachment: AttachmentFile, marker: str, policy: Policy) -> EmailMessage:
    maintype, _, subtype = attachment.content_type.partition("/")
    if not (maintype.isascii() and maintype.replace("-", "").isalnum() and subtype):
        maintype, subtype = "application", "octet-stream"
    filename = _one_line(attachment.filename)
    part = EmailMessage(policy=policy)
    part["Content-Type"] = f"{maintype}/{subtype}"
    if maintype == "text":
        # The files service keeps a text type only for content it found to be UTF-8.
        part.set_param("charset", "utf-8")
    part.set_param("name", filename)
    part["Content-Transfer-Encoding"] = "base64"
    part.add_header("Content-Disposition", "attachment", filename=filename)
    part.set_payload(marker)
    return part


def build_mime(message: OutgoingMessage) -> bytes:
    """The whole message at once, for a transport that needs it in one piece (MimeStream
    otherwise: this holds every attachment in memory, base64-encoded)."""
    with MimeStream(message) as stream:
        return b"".join(stream)
