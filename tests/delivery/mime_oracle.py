"""The reference builder the tests compare build_mime with: the standard library's
`EmailMessage` (SMTP policy, or SMTPUTF8 when an address needs it, 7-bit bodies), as postroom
once built every message with attachments, SMTPUTF8 addresses or a long subject. Kept as it
was, faults included: `formataddr` without a charset makes a non-ASCII display name with a comma
two addresses, so comparisons leave such names to test_mime_roundtrip."""

from collections.abc import Sequence
from email import message_from_bytes, message_from_string
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy, default
from email.utils import format_datetime, formataddr

from postroom.delivery.mime import AttachmentFile, OutgoingMessage


def build_email_message(message: OutgoingMessage, markers: Sequence[str] = ()) -> bytes:
    """The message with `markers` as the attachments' bodies (one per attachment)."""
    policy = (SMTPUTF8 if message.needs_smtputf8 else SMTP).clone(cte_type="7bit")
    mime = EmailMessage(policy=policy)
    mime["From"] = (
        formataddr((message.sender_name, message.sender)) if message.sender_name else message.sender
    )
    mime["To"] = ", ".join(message.to)
    if message.cc:
        mime["Cc"] = ", ".join(message.cc)
    mime["Subject"] = message.subject
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
    part = EmailMessage(policy=policy)
    part["Content-Type"] = f"{maintype}/{subtype}"
    if maintype == "text":
        part.set_param("charset", "utf-8")
    part.set_param("name", attachment.filename)
    part["Content-Transfer-Encoding"] = "base64"
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    part.set_payload(marker)
    return part


def parse(data: bytes) -> EmailMessage:
    """A built message read back with email.policy.default, after CRLF became LF. The email
    package reads the raw UTF-8 in an SMTPUTF8 message's headers (RFC 6532) only from text: from
    bytes it keeps it as undecodable surrogates."""
    lf = data.replace(b"\r\n", b"\n")
    mail = (
        message_from_bytes(lf, policy=default)
        if data.isascii()
        else message_from_string(lf.decode(), policy=default)
    )
    assert isinstance(mail, EmailMessage)
    return mail


def parse_bodies(data: bytes) -> EmailMessage:
    """A built message read back from bytes, for its bodies: an 8bit body is UTF-8 bytes, which
    only a bytes parse decodes by its charset (a text parse mangles it). Its headers, when they
    hold UTF-8 (SMTPUTF8), are read with `parse`."""
    mail = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=default)
    assert isinstance(mail, EmailMessage)
    return mail
