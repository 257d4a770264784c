"""Attachments at send time: each attached file a MIME part, streamed from the blob store."""

import os
from email import message_from_bytes, policy
from typing import Any

from tests.factories import make_message, pdf_bytes, png_bytes, upload_file
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server


def _smtp_url(port: int) -> str:
    return f"smtp://127.0.0.1:{port}"


def _attach(*created: dict[str, Any]) -> list[dict[str, str]]:
    return [{"resourceType": "file", "resourceId": f["id"]} for f in created]


class TestAttachmentsOverSmtp:
    async def test_a_pdf_and_a_png_arrive_byte_for_byte_with_names_and_types(
        self, harness_factory: HarnessFactory
    ) -> None:
        pdf, png = pdf_bytes(200_000), png_bytes(50_000)
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                invoice = await upload_file(h.client, pdf, filename="Invoice 2026-11.pdf")
                logo = await upload_file(h.client, png, filename="logo.png")
                created = await make_message(
                    h.client, status="outbox", attachments=_attach(invoice, logo)
                )
                assert await h.deliver() == 1

                [received] = smtp.received
                mail = received.message
                assert mail.get_content_type() == "multipart/mixed"
                body = mail.get_body(("plain",))
                assert body is not None
                assert body.get_content().strip() == "Email message text body"
                parts = list(mail.iter_attachments())
                assert [p.get_filename() for p in parts] == ["Invoice 2026-11.pdf", "logo.png"]
                assert [p.get_content_type() for p in parts] == ["application/pdf", "image/png"]
                assert [p.get_content_disposition() for p in parts] == ["attachment"] * 2
                assert parts[0].get_content() == pdf
                assert parts[1].get_content() == png
                assert all(len(line) <= 998 for line in received.data.split(b"\r\n"))
                assert (await h.message(created["id"]))["status"] == "sent"

    async def test_a_large_attachment_and_dotted_lines_survive_the_streamed_data(
        self, harness_factory: HarnessFactory
    ) -> None:
        content = os.urandom(3 * 1024 * 1024 + 17)
        text = ".starts with a dot\n..two dots\n.\nend"
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                big = await upload_file(h.client, content, filename="archive.bin")
                await make_message(h.client, status="outbox", text=text, attachments=_attach(big))
                await h.deliver()
                [received] = smtp.received
                [part] = received.message.iter_attachments()
                assert part.get_content() == content
                plain = received.message.get_body(("plain",))
                assert plain is not None
                assert plain.get_content().rstrip("\n") == text

    async def test_a_non_ascii_name_is_carried_in_rfc_2231_form(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                file = await upload_file(h.client, pdf_bytes(), filename="Rechnung März.pdf")
                await make_message(h.client, status="outbox", attachments=_attach(file))
                await h.deliver()
                [received] = smtp.received
                assert received.data.isascii()
                [part] = received.message.iter_attachments()
                assert part.get_filename() == "Rechnung März.pdf"

    async def test_a_missing_blob_fails_the_message_with_nothing_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                file = await upload_file(h.client, pdf_bytes(), filename="gone.pdf")
                created = await make_message(h.client, status="outbox", attachments=_attach(file))
                for blob in h.settings.blob_dir.rglob("*-*"):
                    blob.unlink()  # an operator's mistake, or a disk that lost it
                await h.deliver()
                assert smtp.data_commands == 0
                record = await h.message(created["id"])
                assert record["status"] == "failed"
                assert "cannot read an attachment" in record["responseBody"]

    async def test_a_file_can_be_deleted_once_its_message_is_sent(
        self, harness_factory: HarnessFactory
    ) -> None:
        with smtp_server() as smtp:
            async with harness_factory(smtp_url=_smtp_url(smtp.port)) as h:
                file = await upload_file(h.client)
                await make_message(h.client, status="outbox", attachments=_attach(file))
                assert (await h.client.delete(f"/files/{file['id']}")).status_code == 409
                await h.deliver()
                assert len(smtp.received) == 1
                assert (await h.client.delete(f"/files/{file['id']}")).status_code == 204


class TestAttachmentsToEmlFiles:
    async def test_the_default_transport_writes_the_attachments_into_the_eml(
        self, harness_factory: HarnessFactory
    ) -> None:
        pdf = pdf_bytes(100_000)
        async with harness_factory() as h:
            file = await upload_file(h.client, pdf, filename="terms.pdf")
            created = await make_message(h.client, status="outbox", attachments=_attach(file))
            await h.deliver()
            record = await h.message(created["id"])
            assert record["status"] == "sent"
            eml = h.settings.data_dir / "outbox" / record["responseBody"]
            mail = message_from_bytes(
                eml.read_bytes().replace(b"\r\n", b"\n"), policy=policy.default
            )
            [part] = mail.iter_attachments()
            assert (part.get_filename(), part.get_content()) == ("terms.pdf", pdf)
