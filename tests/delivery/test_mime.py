"""delivery/mime.py: the message in chunks, attachments streamed, the same MIME as in one piece."""

import os
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from postroom.delivery.mime import AttachmentFile, MimeStream, OutgoingMessage, build_mime
from tests.factories import pdf_bytes


def _message(*attachments: AttachmentFile) -> OutgoingMessage:
    return OutgoingMessage(
        id="mail_msg_1",
        sender="app@example.com",
        to=("to@example.com",),
        cc=(),
        bcc=(),
        subject="Your invoice",
        text="Hello",
        html="<p>Hello</p>",
        date=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        attachments=attachments,
    )


def _file(path: Path, content: bytes, name: str, content_type: str) -> AttachmentFile:
    path.write_bytes(content)
    return AttachmentFile(name, content_type, len(content), path)


def _parse(data: bytes) -> EmailMessage:
    parsed = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class TestMimeStream:
    def test_crlf_cr_and_lf_each_end_one_line_and_no_other_break_does(self) -> None:
        text = "one\r\ntwo\rthree\nfour\r\r\nfive\x0bsix\u2028seven\n"
        message = replace(_message(), text=text, html="a\rb")
        body = _parse(build_mime(message)).get_body(("plain",))
        assert body is not None
        assert body.get_content() == "one\ntwo\nthree\nfour\n\nfive\x0bsix\u2028seven\n"

    def test_attachments_are_base64_parts_streamed_into_the_structure(self, tmp_path: Path) -> None:
        pdf, blob = pdf_bytes(500_000), os.urandom(1000)
        message = _message(
            _file(tmp_path / "a", pdf, "a.pdf", "application/pdf"),
            _file(tmp_path / "b", blob, "data.bin", "application/octet-stream"),
        )
        with MimeStream(message) as stream:
            chunks = list(stream)
        assert len(chunks) > 4  # the big attachment came in several reads
        data = b"".join(chunks)
        lines = data.split(b"\r\n")
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert max(len(line) for line in lines) <= 78
        mail = _parse(data)
        assert mail.get_content_type() == "multipart/mixed"
        parts = list(mail.iter_attachments())
        assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
            ("a.pdf", "application/pdf"),
            ("data.bin", "application/octet-stream"),
        ]
        assert [p.get_content() for p in parts] == [pdf, blob]

    def test_without_attachments_it_is_multipart_alternative_in_one_piece(self) -> None:
        with MimeStream(_message()) as stream:
            [data] = list(stream)
        assert _parse(data).get_content_type() == "multipart/alternative"

    def test_build_mime_is_the_stream_joined(self, tmp_path: Path) -> None:
        message = _message(_file(tmp_path / "a", b"a,b\n1,2\n", "t.csv", "text/csv"))
        mail = _parse(build_mime(message))
        [part] = mail.iter_attachments()
        assert part.get_content_type() == "text/csv"
        assert part.get_param("charset") == "utf-8"
        assert part.get_content() == "a,b\n1,2\n"

    def test_a_missing_attachment_file_fails_before_any_byte(self, tmp_path: Path) -> None:
        missing = AttachmentFile("gone.pdf", "application/pdf", 10, tmp_path / "gone")
        with pytest.raises(FileNotFoundError):
            MimeStream(_message(missing))

    def test_a_line_break_in_a_filename_cannot_add_a_header(self, tmp_path: Path) -> None:
        evil = _file(tmp_path / "a", b"x", "a.pdf\r\nBcc: victim@example.com", "application/pdf")
        mail = _parse(build_mime(_message(evil)))
        [part] = mail.iter_attachments()
        assert part["Bcc"] is None
        assert mail["Bcc"] is None


class TestEightBit:
    @pytest.mark.parametrize(
        ("text", "encoding"),
        [
            ("Hello", "7bit"),
            ("Zoë", "8bit"),
            ("€" * 332, "8bit"),  # 996 octets
            ("€" * 333, "quoted-printable"),  # 999 octets: over RFC 5322's line limit
            ("Zoë\x0b", "quoted-printable"),  # a control character is not text
        ],
    )
    def test_text_is_8bit_only_where_lines_fit_and_the_server_allows(
        self, text: str, encoding: str
    ) -> None:
        message = replace(_message(), text=text)
        with MimeStream(message, eight_bit=True) as stream:
            data = b"".join(stream)
        plain = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
        body = plain.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        assert body["Content-Transfer-Encoding"] == encoding
        assert body.get_content() == text + "\n"
        assert stream.eight_bit == (encoding == "8bit")
        assert MimeStream(message).eight_bit is False
