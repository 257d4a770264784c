"""build_mime, property-based: any message the API accepts, parsed back with the standard
library's email package, gives exactly what went in."""

import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import decode_header
from email.message import EmailMessage
from pathlib import Path

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from postroom.core.control_characters import header_text, secret_text
from postroom.delivery.mime import AttachmentFile, MimeStream, OutgoingMessage
from postroom.messages.schemas import EmailAddress
from tests.delivery.mime_oracle import parse, parse_bodies

_address = TypeAdapter(EmailAddress)


def _accepted(check: Callable[[str], str]) -> Callable[[str], bool]:
    """What the API's validator `check` lets through."""

    def accepts(value: str) -> bool:
        try:
            check(value)
        except ValueError:
            return False
        return True

    return accepts


# Characters that have tripped header writers, and anything else but surrogates.
_AWKWARD = st.sampled_from([",", '"', "\\", " ", "\t", "=?", "?=", "'", ";", "<", "@", "é", "€"])
_CHARS = st.one_of(_AWKWARD, st.characters(exclude_categories=["Cs"]))
_HEADER_CHARS = _CHARS.filter(_accepted(header_text))  # a subject or a name
_FILENAME_CHARS = _CHARS.filter(_accepted(secret_text))


def _text(chars: st.SearchStrategy[str], min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.lists(chars, min_size=min_size, max_size=max_size).map("".join)


_names = st.one_of(
    st.none(), _text(_HEADER_CHARS, 1, 60), _text(_HEADER_CHARS, 100, 300).map(lambda n: n[:255])
)
_subjects = st.one_of(
    _text(_HEADER_CHARS, 0, 60),
    _text(_HEADER_CHARS, 800, 998).map(lambda subject: subject[:998]),
    # Long, and with no space to fold at.
    st.builds(lambda char, count: char * count, st.sampled_from("xé€中😀"), st.integers(80, 998)),
)
_bodies = st.one_of(
    _text(_CHARS, 0, 200),
    # Long lines.
    st.builds(lambda line, count: line * count, _text(_CHARS, 1, 40), st.integers(1, 60)),
).map(lambda body: body.replace("\x00", ""))  # the API refuses NUL

_LOCAL = st.one_of(
    st.from_regex(r"[a-z0-9]{1,10}([._+-][a-z0-9]{1,10}){0,2}", fullmatch=True),
    st.sampled_from(["zoë", "用户", "müller.k"]),
)
_DOMAIN = st.sampled_from(
    ["example.com", "Shop.Example.COM", "xn--bcher-kva.example", "bücher.example", "例え.jp"]
)
_addresses = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN).map(
    _address.validate_python
)
_filenames = _text(_FILENAME_CHARS, 1, 255)
_attachments = st.lists(
    st.tuples(
        _filenames,
        st.sampled_from(["application/pdf", "image/png", "text/plain", "text/csv"]),
        st.binary(max_size=3000),
    ),
    max_size=3,
)


_ENCODED_WORD = re.compile(r"=\?utf-8\?[bq]\?[^?]*\?=")


def _display_name(mail: EmailMessage) -> str:
    """The From display name as RFC 2047 reads it. Python's parser reads the encoded words of a
    display name loosely: it keeps the whitespace between two of them (RFC 2047 6.2 drops it)
    and makes a tab inside one a space. A name sent as encoded words is read here with
    `decode_header`, which follows the RFC; a quoted or plain one as Python reads it."""
    [sender] = mail["From"].addresses
    raw = "".join(value for key, value in mail.raw_items() if key == "From")
    phrase = re.sub(r"\r?\n", "", raw).strip().rpartition(" <")[0]
    if not phrase.startswith("=?"):
        return str(sender.display_name)
    assert all(_ENCODED_WORD.fullmatch(word) for word in phrase.split())
    return "".join(part.decode(charset or "ascii") for part, charset in decode_header(phrase))


def _expected_body(text: str) -> str:
    body = re.sub(r"\r\n|\r", "\n", text)
    return body if body.endswith("\n") else body + "\n"


# No shrinking: on these inputs it can take many minutes; the failing example is shown as drawn.
@settings(max_examples=200, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    sender=_addresses,
    sender_name=_names,
    to=st.lists(_addresses, min_size=1, max_size=4),
    cc=st.lists(_addresses, max_size=3),
    bcc=st.lists(_addresses, max_size=2),
    subject=_subjects,
    text=_bodies,
    html=_bodies,
    attachments=_attachments,
    eight_bit=st.booleans(),
)
def test_what_goes_in_comes_out(
    sender: str,
    sender_name: str | None,
    to: list[str],
    cc: list[str],
    bcc: list[str],
    subject: str,
    text: str,
    html: str,
    attachments: list[tuple[str, str, bytes]],
    eight_bit: bool,
) -> None:
    """`eight_bit`: as built for a server that announced 8BITMIME (text bodies as 8bit UTF-8
    where they are not 7-bit); without, as build_mime builds it (7-bit clean)."""
    with tempfile.TemporaryDirectory() as directory:
        files = []
        for index, (filename, content_type, content) in enumerate(attachments):
            path = Path(directory) / str(index)
            path.write_bytes(content)
            files.append(AttachmentFile(filename, content_type, len(content), path))
        message = OutgoingMessage(
            id="mail_msg_01JD",
            sender=sender,
            to=tuple(to),
            cc=tuple(cc),
            bcc=tuple(bcc),
            subject=subject,
            text=text,
            html=html,
            date=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
            sender_name=sender_name,
            attachments=tuple(files),
        )
        with MimeStream(message, eight_bit=eight_bit) as stream:
            data = b"".join(stream)

    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii() or message.needs_smtputf8 or stream.eight_bit
    assert stream.eight_bit <= eight_bit

    mail = parse(data)
    [from_] = mail["From"].addresses
    assert from_.addr_spec == sender
    assert _display_name(mail) == (sender_name or "")
    assert [a.addr_spec for a in mail["To"].addresses] == to
    assert [a.addr_spec for a in mail["Cc"].addresses] if cc else mail["Cc"] is None
    if cc:
        assert [a.addr_spec for a in mail["Cc"].addresses] == cc
    assert mail["Bcc"] is None
    assert mail["Subject"] == subject

    expected_type = "multipart/mixed" if attachments else "multipart/alternative"
    assert mail.get_content_type() == expected_type
    bodies = parse_bodies(data)
    plain, rich = bodies.get_body(("plain",)), bodies.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content() == _expected_body(text)
    assert rich.get_content() == _expected_body(html)
    # get_filename() would strip the name; the parameter is what was sent.
    got = [
        (
            part["Content-Disposition"].params["filename"],
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in bodies.iter_attachments()
    ]
    assert got == attachments
