"""The message as it goes out, and its MIME form."""

import base64
import binascii
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import BinaryIO

from postroom.delivery.mime_headers import address_list, mailbox, unstructured, with_parameter
from postroom.files.blobstore import Content


@dataclass(frozen=True)
class AttachmentFile:
    """A file to attach: its content stays where it is kept (the blob folder, the object
    store) until the send reads it."""

    filename: str
    content_type: str
    size: int
    content: Content


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
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The message's `metadata`, for providers that carry custom data back in their events."""
    reply_to: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers the message asked for (messages/headers.py says which names may be)."""
    return_path: str | None = None
    """The envelope sender (SMTP MAIL FROM) when it is not `sender`: a per-message bounce
    address (events/bounces.py)."""

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


_LINE = 78  # RFC 5322's "SHOULD" line length


def _lines(text: str) -> list[str]:
    """`text` split at CRLF, CR and LF alike (not at the other breaks str.splitlines knows).
    Two replaces and a split: a regex alternation costs ~10x as much on a body."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _one_line(value: str) -> str:
    # The API refuses line breaks in header text; this keeps any older row from adding headers.
    return " ".join(_lines(value))


# Raw bytes of an attachment read at a time: a multiple of 57, so that each read encodes to
# whole 76-character base64 lines (RFC 2045), and ~300 KiB of base64 goes out per chunk.
_RAW_CHUNK = 57 * 4096


class MimeStream:
    """The message as RFC 5322 bytes with CRLF line ends, in chunks, so that an attachment is
    never held whole in memory: multipart/alternative of the text and HTML bodies, inside a
    multipart/mixed with each attachment as a base64 part named by its filename.

    The headers and structure are built with a unique marker as each attachment's body;
    iterating yields that text with each marker replaced by the file's base64 lines, read from
    disk a chunk at a time. The attachment files are opened
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
                self._files.append(attachment.content.open("rb"))
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
    """The message, with `markers` as the attachments' bodies: headers and structure written
    directly (mime_headers), bodies encoded once. The standard library's `EmailMessage` parses
    every header it is given and costs 2.5-9 ms a message, more than the whole SMTP exchange
    (bench/RESULTS.md); this is a few hundredths of that. Every body part is 7-bit, so only an
    address can make the message need SMTPUTF8."""
    headers = [
        mailbox("From", message.sender_name and _one_line(message.sender_name), message.sender)
    ]
    # RFC 5322 3.6: To may be absent; it is when the blocklist left out every To recipient.
    if message.to:
        headers.append(address_list("To", tuple(map(_one_line, message.to))))
    if message.cc:
        headers.append(address_list("Cc", tuple(map(_one_line, message.cc))))
    if message.reply_to:
        headers.append(address_list("Reply-To", tuple(map(_one_line, message.reply_to))))
    headers += [unstructured(name, _one_line(value)) for name, value in message.headers.items()]
    headers += [
        unstructured("Subject", _one_line(message.subject)),
        f"Date: {format_datetime(message.date)}\r\n",
        f"Message-ID: {_one_line(message.message_id_header)}\r\n",
        "MIME-Version: 1.0\r\n",
    ]
    alternative = _multipart(
        "alternative", [_text_part(message.text, "plain"), _text_part(message.html, "html")]
    )
    if markers:
        parts = [alternative]
        for attachment, marker in zip(message.attachments, markers, strict=True):
            parts.append(_attachment_part(attachment) + marker)
        body = _multipart("mixed", parts)
    else:
        body = alternative
    return ("".join(headers) + body).encode()


def _multipart(subtype: str, parts: list[str]) -> str:
    """Each part is its headers, a blank line and its body, which does not end with a line
    break of its own: the CRLF before a delimiter belongs to the delimiter."""
    # Our own boundary: 128 random bits cannot occur in a body written before it was drawn, and
    # "=_" never occurs in quoted-printable or base64.
    boundary = f"=_{secrets.token_hex(16)}"
    delimiter = f"\r\n--{boundary}\r\n"
    return (
        f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
        + delimiter.join(parts)
        + f"\r\n--{boundary}--\r\n"
    )


# What a 7bit body must not hold (RFC 2045 2.7): controls other than tab and line ends.
_NOT_7BIT_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _text_part(text: str, subtype: str) -> str:
    """7bit when ASCII lines of at most 78 characters; quoted-printable otherwise, so that the
    message is 7-bit clean whatever the server. Line ends become CRLF; a final one is added."""
    lines = _lines(text)
    if lines[-1] == "":
        lines.pop()
    body = "\n".join(lines) + "\n"
    if (
        body.isascii()
        and max(map(len, lines), default=0) <= _LINE
        and not _NOT_7BIT_TEXT.search(body)
    ):
        encoding = "7bit"
    else:
        encoding = "quoted-printable"
        body = binascii.b2a_qp(body.encode(), istext=True).decode("ascii")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n" + body.replace("\n", "\r\n")
    )


_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")


def _attachment_part(attachment: AttachmentFile) -> str:
    """The part's headers and the blank line: its body, the base64 lines, follows."""
    maintype, _, subtype = attachment.content_type.partition("/")
    if not (_TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)):
        maintype, subtype = "application", "octet-stream"
    content_type = f"{maintype}/{subtype}"
    if maintype == "text":
        # The files service keeps a text type only for content it found to be UTF-8.
        content_type += '; charset="utf-8"'
    filename = _one_line(attachment.filename)
    return (
        with_parameter("Content-Type", content_type, "name", filename)
        + "Content-Transfer-Encoding: base64\r\n"
        + with_parameter("Content-Disposition", "attachment", "filename", filename)
        + "\r\n"
    )


def build_mime(message: OutgoingMessage) -> bytes:
    """The whole message at once, for a transport that needs it in one piece (MimeStream
    otherwise: this holds every attachment in memory, base64-encoded)."""
    with MimeStream(message) as stream:
        return b"".join(stream)
