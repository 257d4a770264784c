"""delivery/mime.py: build_mime gives the same mail as the standard library's EmailMessage
(tests/delivery/mime_oracle.py) for every kind of message, 7-bit clean but for SMTPUTF8
addresses, one line a header value whatever the input, lines of 78 where a word allows."""

import base64
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom.delivery.mime import AttachmentFile, OutgoingMessage, build_mime
from tests.delivery.mime_oracle import build_email_message, parse

TEXT = "Hello Zoë,\n\nYour order of € 215.00 is on its way.\n" + "A long line " * 20 + "\n"
HTML = "<p>Hello Zoë,</p>\n<p>Your order of €&nbsp;215.00 is on its way.</p>\n"


def _message(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "id": "mail_msg_01JD",
        "sender": "billing@shop.example.com",
        "to": ("to@example.com",),
        "cc": ("cc@example.com",),
        "bcc": ("hidden@example.com",),
        "subject": "Your receipt",
        "text": TEXT,
        "html": HTML,
        "date": datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


_parse = parse


def _longest_line(data: bytes) -> int:
    return max(len(line) for line in data.split(b"\r\n"))


def _oracle(message: OutgoingMessage) -> bytes:
    """The reference builder's message, each attachment's marker replaced by its base64."""
    markers = [f"oracle-marker-{i}" for i in range(len(message.attachments))]
    data = build_email_message(message, markers)
    for marker, attachment in zip(markers, message.attachments, strict=True):
        encoded = base64.encodebytes(attachment.content.read_bytes()).rstrip(b"\n")
        data = data.replace(marker.encode(), encoded.replace(b"\n", b"\r\n"))
    return data


def _contents(mail: EmailMessage) -> tuple[str, str]:
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version")


class TestCommonMessage:
    def test_multipart_alternative_with_every_header_and_crlf_line_ends(self) -> None:
        data = build_mime(_message())
        assert data.isascii()
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert max(len(line) for line in data.split(b"\r\n")) <= 78
        mail = _parse(data)
        assert mail.get_content_type() == "multipart/alternative"
        assert mail["From"] == "billing@shop.example.com"
        assert mail["To"] == "to@example.com"
        assert mail["Cc"] == "cc@example.com"
        assert mail["Bcc"] is None
        assert b"hidden@example.com" not in data
        assert mail["Subject"] == "Your receipt"
        assert mail["Date"] == "Wed, 25 Nov 2026 12:00:00 +0000"
        assert mail["Message-ID"] == "<mail_msg_01JD@shop.example.com>"
        assert _contents(mail) == (TEXT, HTML)

    def test_it_is_the_same_mail_as_the_email_message_builder(self) -> None:
        subject = "Zoë, your receipt \u2013 order #A-1 " * 4
        message = _message(subject=subject, sender_name="Zoë Müller")
        fast, reference = _parse(build_mime(message)), _parse(build_email_message(message))
        assert [str(fast[h]) for h in HEADERS] == [str(reference[h]) for h in HEADERS]
        assert _contents(fast) == _contents(reference)

    def test_a_line_break_in_any_value_adds_no_header(self) -> None:
        data = build_mime(
            _message(subject="Hi\r\nBcc: evil@example.com", sender_name="Shop\nX-Evil: 1")
        )
        mail = _parse(data)
        assert mail["Bcc"] is None and mail["X-Evil"] is None
        assert mail["Subject"] == "Hi Bcc: evil@example.com"
        assert [k for k in mail] == ["From", *HEADERS[1:], "Content-Type"]

    def test_non_ascii_subject_and_sender_name_become_encoded_words(self) -> None:
        data = build_mime(_message(subject="Zoë \u2013 € 215", sender_name="Zoë Müller"))
        assert data.isascii()
        mail = _parse(data)
        assert mail["Subject"] == "Zoë \u2013 € 215"
        assert mail["From"].addresses[0].display_name == "Zoë Müller"
        assert mail["From"].addresses[0].addr_spec == "billing@shop.example.com"

    @pytest.mark.parametrize(
        "name",
        ["Zoë's Shop, Inc.", "Shop, Inc.", 'Shop "Best", Inc.', "Back\\slash, Ltd", "a=?b?=c"],
    )
    def test_a_sender_name_with_a_comma_quote_or_backslash_stays_one_address(
        self, name: str
    ) -> None:
        mail = _parse(build_mime(_message(sender_name=name)))
        [sender] = mail["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (name, "billing@shop.example.com")

    def test_many_recipients_are_folded_between_addresses(self) -> None:
        recipients = tuple(f"recipient-number-{n}@example.com" for n in range(50))
        data = build_mime(_message(to=recipients))
        assert max(len(line) for line in data.split(b"\r\n")) <= 78
        assert [a.addr_spec for a in _parse(data)["To"].addresses] == list(recipients)

    def test_ascii_bodies_with_short_lines_are_7bit_others_quoted_printable(self) -> None:
        mail = _parse(build_mime(_message(text="Hello\nWorld\n")))
        text, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert text is not None and html is not None
        assert text["Content-Transfer-Encoding"] == "7bit"
        assert html["Content-Transfer-Encoding"] == "quoted-printable"
        assert _contents(mail) == ("Hello\nWorld\n", HTML)

    def test_trailing_spaces_and_crlf_bodies_survive(self) -> None:
        text = "trailing space \r\n\ttab\t\r\n.dot line\r\nFrom the start\r\n"
        mail = _parse(build_mime(_message(text=text)))
        assert _contents(mail)[0] == text.replace("\r\n", "\n")

    def test_each_message_gets_its_own_boundary(self) -> None:
        first, second = (_parse(build_mime(_message())) for _ in range(2))
        assert first.get_boundary() != second.get_boundary()


def _attachment(path: Path, name: str, content_type: str, content: bytes) -> AttachmentFile:
    path.write_bytes(content)
    return AttachmentFile(name, content_type, len(content), path)


class TestEveryMessageAsTheOracle:
    @pytest.mark.parametrize(
        "overrides",
        [
            {},
            {"subject": "Zoë \u2013 € 215", "sender_name": "Zoë Müller"},
            {"to": ("zoë@example.com", "to@example.com"), "sender_name": "Zoë"},
            {"subject": "Your receipt for order #A-1, " * 30},
            {"subject": "Zoë" * 300},
        ],
        ids=["common", "non-ascii", "smtputf8", "long-subject", "long-non-ascii-subject"],
    )
    def test_headers_and_bodies(self, overrides: dict[str, Any]) -> None:
        message = _message(**overrides)
        fast, reference = _parse(build_mime(message)), _parse(_oracle(message))
        assert [str(fast[h]) for h in HEADERS] == [str(reference[h]) for h in HEADERS]
        assert _contents(fast) == _contents(reference)

    def test_attachments(self, tmp_path: Path) -> None:
        message = _message(
            attachments=(
                _attachment(
                    tmp_path / "a", 'Rechnung für Zoë, "März".pdf', "application/pdf", b"%PDF"
                ),
                _attachment(tmp_path / "b", "a.csv", "text/csv", b"a,b\n1,2\n"),
                _attachment(tmp_path / "c", "n" * 200 + ".bin", "application/octet-stream", b""),
            )
        )
        data = build_mime(message)
        fast, reference = _parse(data), _parse(_oracle(message))
        assert data.isascii() and _longest_line(data) <= 78
        assert fast.get_content_type() == reference.get_content_type() == "multipart/mixed"
        assert _contents(fast) == _contents(reference)
        assert [
            (p.get_filename(), p.get_content_type(), p.get_params(), p.get_content())
            for p in fast.iter_attachments()
        ] == [
            (p.get_filename(), p.get_content_type(), p.get_params(), p.get_content())
            for p in reference.iter_attachments()
        ]


class TestOtherMessages:
    def test_smtputf8_addresses_are_written_as_utf8_and_nothing_else(self) -> None:
        data = build_mime(_message(to=("zoë@bücher.example",), subject="Zoë", sender_name="Zoë"))
        assert "To: zoë@bücher.example".encode() in data
        # Names and text still go as encoded words: the addresses are the only raw UTF-8.
        assert data.replace("zoë@bücher.example".encode(), b"").isascii()
        mail = _parse(data)
        assert [a.addr_spec for a in mail["To"].addresses] == ["zoë@bücher.example"]
        assert (mail["Subject"], mail["From"].addresses[0].display_name) == ("Zoë", "Zoë")
        assert _contents(mail) == (TEXT, HTML)

    @pytest.mark.parametrize(
        "subject",
        [
            "x" * 990,
            "€" * 998,
            "Zoë " * 240,
            "word " * 190 + "x" * 100,
            " \tleading and trailing \t",
        ],
        ids=["ascii-no-space", "non-ascii-no-space", "non-ascii-words", "long-word", "spaces"],
    )
    def test_a_long_subject_folds_to_78_and_reads_back_whole(self, subject: str) -> None:
        data = build_mime(_message(subject=subject))
        assert data.isascii() and _longest_line(data) <= 78
        assert _parse(data)["Subject"] == subject

    def test_a_long_ascii_word_in_a_sender_name_stays_within_998(self) -> None:
        name = "Shop" * 60 + ", Inc."
        data = build_mime(_message(sender_name=name))
        assert _longest_line(data) <= 998
        [sender] = _parse(data)["From"].addresses
        assert sender.display_name == name

    def test_a_unicode_line_separator_in_a_body_is_not_a_line_break(self) -> None:
        text = "one\u2028two\x0cthree\x85four\n"
        assert _contents(_parse(build_mime(_message(text=text, html=text)))) == (text, text)
