"""HTTP tests of files/router.py: /files uploaded three ways, downloaded, listed, changed."""

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from postroom.auth import service as auth
from postroom.settings import Settings
from tests.conftest import LIMITED_FILE_BYTES
from tests.factories import make_message, message_body, pdf_bytes, png_bytes, upload_file


def _stored(settings: Settings) -> set[Path]:
    """Every file under the blob directory, blobs and partial uploads alike."""
    return {p for p in settings.blob_dir.rglob("*") if p.is_file()}


async def _download(client: httpx.AsyncClient, file: dict[str, Any]) -> httpx.Response:
    response = await client.get(file["_links"][1]["href"])
    assert response.status_code == 200, response.text
    return response


async def _chunks(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _post(client: httpx.AsyncClient, style: str, content: bytes) -> httpx.Response:
    """POST /files in one of the body styles; the *-chunked ones send no Content-Length."""
    encoded = base64.b64encode(content)
    if style == "multipart":
        return await client.post("/files", files={"file": ("upload.bin", content)})
    if style == "raw":
        return await client.post("/files", content=content)
    if style == "raw-chunked":
        return await client.post("/files", content=_chunks(content))
    body = b'{"name": "upload.bin", "file": "' + encoded + b'"}'
    headers = {"Content-Type": "application/json"}
    if style == "json":
        return await client.post("/files", content=body, headers=headers)
    assert style == "json-chunked"
    return await client.post("/files", content=_chunks(body), headers=headers)


STYLES = ["multipart", "raw", "raw-chunked", "json", "json-chunked"]


class TestUpload:
    async def test_multipart_upload_returns_201_with_location_and_every_field(
        self, client: httpx.AsyncClient
    ) -> None:
        content = png_bytes()
        response = await client.post(
            "/files",
            files={"file": ("logo.png", content, "image/png")},
            data={"description": "Our logo", "tags": ["brand", "logo"]},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        location = f"{client.base_url}/files/{body['id']}"
        assert response.headers["location"] == location
        assert body["id"].startswith("file_")
        assert (body["name"], body["extension"], body["mime"]) == ("logo.png", "png", "image/png")
        assert (body["description"], body["tags"]) == ("Our logo", ["brand", "logo"])
        assert body["size"] == len(content)
        assert body["sha1"] == hashlib.sha1(content, usedforsecurity=False).hexdigest()
        assert body["_links"] == [
            {"rel": "self", "href": location},
            {"rel": "download", "href": f"{location}/download"},
        ]
        assert body["createdTime"] == body["updatedTime"]
        assert (body["isPublic"], body["sourceType"], body["width"]) == (False, "upload", None)

    async def test_name_field_wins_over_the_multipart_filename(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client, filename="C:\\Users\\me\\scan.png", description="x")
        assert created["name"] == "scan.png"
        named = await upload_file(client, filename="scan.png", name="invoice.png")
        assert named["name"] == "invoice.png"

    async def test_raw_body_takes_its_name_from_content_disposition(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/files",
            content=pdf_bytes(),
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": "attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["name"], body["mime"], body["extension"]) == (
            "Rechnung März.pdf",
            "application/pdf",
            "pdf",
        )

    async def test_raw_body_without_a_name_is_named_after_its_id(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/files", content=pdf_bytes())
        body = response.json()
        assert body["name"] == f"{body['id']}.pdf"

    async def test_json_upload_keeps_name_description_and_tags(
        self, client: httpx.AsyncClient
    ) -> None:
        content = pdf_bytes()
        response = await client.post(
            "/files",
            json={
                "file": base64.b64encode(content).decode(),
                "name": "terms.pdf",
                "description": "Terms of service",
                "tags": ["legal"],
                "id": "file_chosen_by_client",
                "mime": "text/plain",
                "size": 1,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["id"] != "file_chosen_by_client"
        assert (body["name"], body["description"], body["tags"]) == (
            "terms.pdf",
            "Terms of service",
            ["legal"],
        )
        assert (body["mime"], body["size"]) == ("application/pdf", len(content))

    async def test_json_upload_takes_a_data_url_and_wrapped_base64(
        self, client: httpx.AsyncClient
    ) -> None:
        content = png_bytes(5000)
        wrapped = base64.encodebytes(content).decode()  # 76-character lines
        for encoded in ("data:image/png;base64," + base64.b64encode(content).decode(), wrapped):
            response = await client.post("/files", json={"file": encoded, "name": "a.png"})
            assert response.status_code == 201, response.text
            assert (await _download(client, response.json())).content == content

    @pytest.mark.parametrize("style", STYLES)
    async def test_download_is_byte_identical(self, client: httpx.AsyncClient, style: str) -> None:
        content = pdf_bytes(300_000)
        response = await _post(client, style, content)
        assert response.status_code == 201, response.text
        assert response.json()["size"] == len(content)
        assert (await _download(client, response.json())).content == content

    async def test_png_named_txt_is_image_png(self, client: httpx.AsyncClient) -> None:
        created = await upload_file(client, png_bytes(), name="notes.txt")
        assert (created["name"], created["mime"], created["extension"]) == (
            "notes.txt",
            "image/png",
            "png",
        )

    async def test_clients_content_type_is_not_trusted(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/files", content=png_bytes(), headers={"Content-Type": "application/pdf"}
        )
        assert response.json()["mime"] == "image/png"

    async def test_text_takes_its_text_type_from_the_name(self, client: httpx.AsyncClient) -> None:
        csv = await upload_file(client, b"id,total\n1,9.99\n", name="export.csv")
        assert (csv["mime"], csv["extension"]) == ("text/csv", "csv")
        text = await upload_file(client, "Grüße\n".encode(), name="greeting")
        assert (text["mime"], text["extension"]) == ("text/plain", "txt")

    async def test_a_text_name_does_not_make_binary_content_text(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client, b"\x00\x01\x02" + os.urandom(64), name="data.csv")
        assert (created["mime"], created["extension"]) == ("application/octet-stream", "csv")

    async def test_url_upload_is_422_naming_url(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/files", json={"url": "https://example.com/logo.png"})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [f["field"] for f in response.json()["invalidFields"]] == ["url"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"file": "not base64!"}, "file"),
            ({"file": 12}, "file"),
            ({"name": "a.png"}, "file"),
            ({"file": "", "name": "a.png"}, "file"),
            ({"file": "aGk=", "isPublic": True}, "isPublic"),
            ({"file": "aGk=", "name": "a\r\nX-Evil: 1"}, "name"),
            ({"file": "aGk=", "name": "x" * 256}, "name"),
            ({"file": "aGk=", "tags": "one"}, "tags"),
            ({"file": "aGk=", "sourceType": "scanner"}, "sourceType"),
        ],
    )
    async def test_invalid_json_upload_is_422_naming_the_field(
        self, client: httpx.AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        response = await client.post("/files", json=body)
        assert response.status_code == 422, response.text
        assert field in [f["field"] for f in response.json()["invalidFields"]]

    async def test_empty_raw_body_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/files", content=b"")
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == ["file"]

    async def test_multipart_without_a_file_part_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/files", files={"other": ("a.png", png_bytes())}, data={"name": "a.png"}
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == ["file"]

    async def test_malformed_json_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/files", content=b'{"file": ', headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["status"] == 400

    async def test_upload_without_an_api_key_is_401(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.post("/files", content=png_bytes())
        assert response.status_code == 401


class TestSizeLimit:
    @pytest.mark.parametrize("style", STYLES)
    async def test_over_the_limit_is_413_and_leaves_nothing_stored(
        self, limited_client: httpx.AsyncClient, limited_settings: Settings, style: str
    ) -> None:
        before = _stored(limited_settings)
        response = await _post(limited_client, style, os.urandom(LIMITED_FILE_BYTES + 1))
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 413
        assert _stored(limited_settings) == before
        listed = await limited_client.get("/files")
        assert listed.json() == []

    async def test_a_body_far_over_the_limit_is_refused_before_it_is_read(
        self, limited_client: httpx.AsyncClient, limited_settings: Settings
    ) -> None:
        before = _stored(limited_settings)
        response = await limited_client.post("/files", content=os.urandom(50 * LIMITED_FILE_BYTES))
        assert response.status_code == 413
        assert _stored(limited_settings) == before

    @pytest.mark.parametrize("style", STYLES)
    async def test_a_file_of_exactly_the_limit_is_accepted(
        self, limited_client: httpx.AsyncClient, style: str
    ) -> None:
        content = os.urandom(LIMITED_FILE_BYTES)
        response = await _post(limited_client, style, content)
        assert response.status_code == 201, response.text
        assert (await _download(limited_client, response.json())).content == content


class TestStorage:
    async def test_files_with_the_same_content_share_one_blob(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        content = pdf_bytes()
        before = _stored(settings)
        first = await upload_file(client, content, filename="a.pdf")
        second = await upload_file(client, content, filename="b.pdf")
        added = _stored(settings) - before
        assert len(added) == 1
        [blob] = added
        assert blob.read_bytes() == content
        assert first["sha1"] == second["sha1"]
        assert first["id"] != second["id"]

    async def test_the_blob_goes_with_the_last_file_that_has_it(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        content = pdf_bytes()
        before = _stored(settings)
        first = await upload_file(client, content, filename="a.pdf")
        second = await upload_file(client, content, filename="b.pdf")
        assert (await client.delete(f"/files/{first['id']}")).status_code == 204
        assert len(_stored(settings) - before) == 1
        assert (await _download(client, second)).content == content
        assert (await client.delete(f"/files/{second['id']}")).status_code == 204
        assert _stored(settings) == before

    async def test_content_uploaded_again_after_its_blob_went_is_stored_anew(
        self, client: httpx.AsyncClient
    ) -> None:
        content = pdf_bytes()
        first = await upload_file(client, content, filename="a.pdf")
        assert (await client.delete(f"/files/{first['id']}")).status_code == 204
        again = await upload_file(client, content, filename="a.pdf")
        assert (await _download(client, again)).content == content

    async def test_an_upload_under_way_does_not_hold_up_other_writers(
        self, client: httpx.AsyncClient
    ) -> None:
        # The upload sends its first part, then waits until a message has been created meanwhile.
        # Were the upload's request holding a transaction (on SQLite: the write lock), the
        # message could not be stored until the upload ended, and this would never finish.
        halfway = asyncio.Event()
        other_done = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b"%PDF-1.4\n" + os.urandom(10_000)
            halfway.set()
            await other_done.wait()
            yield b"\n%%EOF\n"

        async def other_writer() -> None:
            await halfway.wait()
            await make_message(client)
            other_done.set()

        upload, _ = await asyncio.wait_for(
            asyncio.gather(client.post("/files", content=body()), other_writer()), timeout=20
        )
        assert upload.status_code == 201


class TestDownload:
    async def test_download_has_type_length_and_disposition(
        self, client: httpx.AsyncClient
    ) -> None:
        content = pdf_bytes()
        created = await upload_file(client, content, filename="invoice 42.pdf")
        response = await _download(client, created)
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-length"] == str(len(content))
        assert response.headers["content-disposition"] == 'attachment; filename="invoice 42.pdf"'
        assert response.headers["x-content-type-options"] == "nosniff"

    async def test_a_name_beyond_ascii_is_given_in_rfc_5987_form_too(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client, filename="счёт.png")
        response = await _download(client, created)
        assert response.headers["content-disposition"] == (
            "attachment; filename=\"____.png\"; filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82.png"
        )

    async def test_unknown_file_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/files/file_nope/download")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


class TestList:
    async def test_list_is_newest_first_with_pagination_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        ids = [(await upload_file(client))["id"] for _ in range(3)]
        response = await client.get("/files", params={"limit": 2})
        assert response.status_code == 200
        assert [f["id"] for f in response.json()] == ids[::-1][:2]
        assert response.headers["pagination-total"] == "3"
        assert response.headers["pagination-limit"] == "2"
        assert response.headers["pagination-offset"] == "0"
        rest = await client.get("/files", params={"limit": 2, "offset": 2})
        assert [f["id"] for f in rest.json()] == ids[:1]

    async def test_filter_by_mime_sort_by_size_and_q_on_name_and_tags(
        self, client: httpx.AsyncClient
    ) -> None:
        small = await upload_file(client, pdf_bytes(1000), name="small.pdf", tags=["Quarterly"])
        large = await upload_file(client, pdf_bytes(5000), name="large.pdf")
        await upload_file(client, png_bytes(), name="logo.png")
        pdfs = await client.get(
            "/files", params={"filter": "mime:application/pdf", "sort": "-size"}
        )
        assert [f["id"] for f in pdfs.json()] == [large["id"], small["id"]]
        found = await client.get("/files", params={"q": "QUARTER"})
        assert [f["id"] for f in found.json()] == [small["id"]]
        by_name = await client.get("/files", params={"q": "logo"})
        assert [f["name"] for f in by_name.json()] == ["logo.png"]

    async def test_unknown_filter_field_is_422_naming_it(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/files", params={"filter": "color:red"})
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == ["filter.color"]


class TestChange:
    async def test_patch_changes_name_description_and_tags_and_nothing_else(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client, filename="a.png", description="old", tags=["x"])
        response = await client.patch(
            f"/files/{created['id']}",
            json={"name": "b.png", "tags": ["y", "z"], "mime": "text/plain", "size": 1},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["name"], body["description"], body["tags"]) == ("b.png", "old", ["y", "z"])
        assert (body["mime"], body["size"], body["sha1"]) == (
            created["mime"],
            created["size"],
            created["sha1"],
        )
        assert (await client.get(f"/files/{created['id']}")).json() == body

    async def test_put_changes_a_file_as_rebillys_sdk_sends_it(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client)
        response = await client.put(
            f"/files/{created['id']}", json={**created, "description": "new"}
        )
        assert response.status_code == 200
        assert response.json()["description"] == "new"

    @pytest.mark.parametrize(
        ("body", "field"),
        [({"name": ""}, "name"), ({"name": "a\nb"}, "name"), ({"isPublic": True}, "isPublic")],
    )
    async def test_invalid_change_is_422_naming_the_field(
        self, client: httpx.AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        created = await upload_file(client)
        response = await client.patch(f"/files/{created['id']}", json=body)
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == [field]


class TestDelete:
    async def test_delete_is_204_then_404(self, client: httpx.AsyncClient) -> None:
        created = await upload_file(client)
        response = await client.delete(f"/files/{created['id']}")
        assert response.status_code == 204
        assert response.content == b""
        assert (await client.get(f"/files/{created['id']}")).status_code == 404
        assert (await client.delete(f"/files/{created['id']}")).status_code == 404

    async def test_delete_while_an_outbox_message_attaches_it_is_409(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client)
        await make_message(
            client,
            status="outbox",
            attachments=[{"resourceType": "file", "resourceId": created["id"]}],
        )
        response = await client.delete(f"/files/{created['id']}")
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get(f"/files/{created['id']}")).status_code == 200

    async def test_a_file_only_a_draft_attaches_can_go_and_the_draft_then_cannot_be_sent(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await upload_file(client)
        draft = await make_message(
            client, attachments=[{"resourceType": "file", "resourceId": created["id"]}]
        )
        assert (await client.delete(f"/files/{created['id']}")).status_code == 204
        response = await client.patch(f"/email-messages/{draft['id']}", json={"status": "outbox"})
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == [
            "attachments.0.resourceId"
        ]
        assert (await client.get(f"/email-messages/{draft['id']}")).json()["status"] == "draft"


class TestOrganizations:
    async def test_another_organizations_file_is_404_everywhere(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await upload_file(other_client)
        path = f"/files/{theirs['id']}"
        assert (await client.get(path)).status_code == 404
        assert (await client.get(f"{path}/download")).status_code == 404
        assert (await client.patch(path, json={"name": "mine.png"})).status_code == 404
        assert (await client.put(path, json={"name": "mine.png"})).status_code == 404
        assert (await client.delete(path)).status_code == 404
        assert theirs["id"] not in [f["id"] for f in (await client.get("/files")).json()]
        assert (await other_client.get(path)).json()["name"] == theirs["name"]

    async def test_another_organizations_file_cannot_be_attached(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await upload_file(other_client)
        response = await client.post(
            "/email-messages",
            json=message_body(attachments=[{"resourceType": "file", "resourceId": theirs["id"]}]),
        )
        assert response.status_code == 422
        assert [f["field"] for f in response.json()["invalidFields"]] == [
            "attachments.0.resourceId"
        ]

    async def test_files_are_served_under_the_organization_path_too(
        self, client: httpx.AsyncClient, organization: auth.NewOrganization
    ) -> None:
        created = await upload_file(client)
        mine = f"/organizations/{organization.organization_id}/files"
        assert (await client.get(f"{mine}/{created['id']}")).json() == created
        assert (await client.post(mine, content=png_bytes())).status_code == 201
        response = await client.get(f"/organizations/org_someone_else/files/{created['id']}")
        assert response.status_code == 404
