"""The message as it goes out, and its MIME form, built with the standard library's email."""

import base64
import binascii
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.policy import SMTP, SMTPUTF8, Compat32, Policy
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
    """The message, with `markers` as the attachments' bodies. Two builders, both the standard
    library's email package. The common message (ASCII addresses, no attachments) is built
    with the compat32 `Message` API: bodies encoded once by us, headers stored as given (each
    one a single line) and folded by the generator. That is about ten times cheaper than
    `EmailMessage`, whose header registry parses every header we set: 2.5-9 ms a message,
    more than the whole SMTP exchange (bench/RESULTS.md). Anything else (attachments, SMTPUTF8
    addresses, a subject too long to stay unfolded) takes `EmailMessage`."""
    if not markers and not message.needs_smtputf8 and len(message.subject) <= _MAX_SUBJECT:
        return _build_compat32(message)
    return _build_email_message(message, markers)


def _build_email_message(message: OutgoingMessage, markers: Sequence[str] = ()) -> bytes:
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
