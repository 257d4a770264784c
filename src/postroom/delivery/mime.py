"""The message as it goes out, and its MIME form."""

import base64
import binascii
import functools
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

    `eight_bit`: for a server that announced 8BITMIME, a text body that is not 7-bit is sent as
    it is (UTF-8, `8bit`) when its lines fit (RFC 5322's 998 octets), not quoted-printable;
    `self.eight_bit` says whether one was, so the sender must declare BODY=8BITMIME.
    """

    def __init__(self, message: OutgoingMessage, *, eight_bit: bool = False) -> None:
        token = secrets.token_hex(16) if message.attachments else ""
        markers = [f"postroom-attachment-{token}-{i}" for i in range(len(message.attachments))]
        text, self.eight_bit = _skeleton(message, markers, eight_bit)
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


def _skeleton(message: OutgoingMessage, markers: list[str], eight_bit: bool) -> tuple[bytes, bool]:
    """The message, with `markers` as the attachments' bodies: headers and structure written
    directly (mime_headers), bodies encoded once. The standard library's `EmailMessage` parses
    every header it is given and costs 2.5-9 ms a message, more than the whole SMTP exchange
    (bench/RESULTS.md); this is a few hundredths of that. Every body part is 7-bit unless
    `eight_bit` allows 8bit text (the second value: whether a part is), so only an address can
    make the message need SMTPUTF8."""
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
        f"Date: {_date(message.date.replace(microsecond=0))}\r\n",
        f"Message-ID: {_one_line(message.message_id_header)}\r\n",
        "MIME-Version: 1.0\r\n",
    ]
    text, text_8bit = _text_part(message.text, b"plain", eight_bit)
    html, html_8bit = _text_part(message.html, b"html", eight_bit)
    alternative = _multipart(b"alternative", [text, html])
    if markers:
        parts = [alternative]
        for attachment, marker in zip(message.attachments, markers, strict=True):
            parts.append((_attachment_part(attachment) + marker).encode())
        body = _multipart(b"mixed", parts)
    else:
        body = alternative
    return "".join(headers).encode() + body, text_8bit or html_8bit


# The Date header counts whole seconds, and messages come in bursts: most share their second with
# the one before (email.utils.format_datetime was ~3% of a worker's CPU).
_date = functools.lru_cache(maxsize=64)(format_datetime)


def _multipart(subtype: bytes, parts: list[bytes]) -> bytes:
    """Each part is its headers, a blank line and its body, which does not end with a line
    break of its own: the CRLF before a delimiter belongs to the delimiter."""
    # Our own boundary: 128 random bits cannot occur in a body written before it was drawn, and
    # "=_" never occurs in quoted-printable or base64.
    boundary = b"=_" + secrets.token_hex(16).encode()
    delimiter = b"\r\n--" + boundary + b"\r\n"
    return (
        b"Content-Type: multipart/"
        + subtype
        + b';\r\n boundary="'
        + boundary
        + b'"\r\n\r\n--'
        + boundary
        + b"\r\n"
        + delimiter.join(parts)
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )


# The octets a text body may hold as 7bit or 8bit (RFC 2045 2.7, 2.8): tab, line feed (line ends
# are LF here until the end), and everything from space up but DEL.
_TEXT_OCTETS = bytes([9, 10, *range(32, 127), *range(128, 256)])
_MAX_8BIT_LINE = 998  # octets, without the CRLF (RFC 5322 2.1.1, RFC 6152)


def _text_part(text: str, subtype: bytes, eight_bit: bool) -> tuple[bytes, bool]:
    """7bit when ASCII lines of at most 78 characters; else 8bit if allowed and every line fits
    in 998 octets; else quoted-printable, 7-bit clean whatever the server. Line ends become
    CRLF; a final one is added. The second value: whether the part is 8bit.

    Worked on as UTF-8 bytes, where splitting and scanning cost a third of what they cost on a
    str that holds any non-ASCII character (and lengths are the octets RFC 5322 counts)."""
    body = text.encode()
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if body.endswith(b"\n"):
        body = body[:-1]
    longest = max(map(len, body.split(b"\n")))
    # Deleting every text octet leaves the others: a control character makes it not text.
    plain = not body.translate(None, _TEXT_OCTETS)
    if body.isascii() and longest <= _LINE and plain:
        encoding = b"7bit"
    elif eight_bit and plain and longest <= _MAX_8BIT_LINE:
        encoding = b"8bit"
    else:
        encoding = b"quoted-printable"
        body = binascii.b2a_qp(body + b"\n", istext=True)[:-1]
    part = (
        b"Content-Type: text/" + subtype + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: "
        + encoding
        + b"\r\n\r\n"
        + body.replace(b"\n", b"\r\n")
        + b"\r\n"
    )
    return part, encoding == b"8bit"


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
