"""delivery/mime.py: the common message's compat32 builder gives the same mail as EmailMessage,
7-bit clean, one line a header value whatever the input."""

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from postroom.delivery.mime import OutgoingMessage, _build_email_message, build_mime

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


def _parse(data: bytes) -> EmailMessage:
    parsed = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


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
        fast, reference = _parse(build_mime(message)), _parse(_build_email_message(message))
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

    def test_a_sender_name_with_a_comma_stays_one_address(self) -> None:
        mail = _parse(build_mime(_message(sender_name="Zoë's Shop, Inc.")))
        [sender] = mail["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (
            "Zoë's Shop, Inc.",
            "billing@shop.example.com",
        )

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


class TestOtherMessages:
    def test_smtputf8_addresses_are_written_as_utf8(self) -> None:
        data = build_mime(_message(to=("zoë@example.com",)))
        assert "To: zoë@example.com".encode() in data
        assert _contents(_parse(data)) == (TEXT, HTML)

    def test_a_subject_too_long_for_one_line_is_folded_by_email_message(self) -> None:
        subject = "x" * 990
        data = build_mime(_message(subject=subject))
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        assert _parse(data)["Subject"] == subject
