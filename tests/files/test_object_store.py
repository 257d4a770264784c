"""File contents in the blob folder and in an object store through the S3 API (a real SeaweedFS
on loopback): the same guarantees either way, through the store itself and through the API."""

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import obstore
import pytest
from obstore.store import S3Store

from bench import attachments
from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.files import service as files
from postroom.files.blobstore import BlobStorage, BlobStore
from postroom.files.object_store import ObjectBlobStore
from postroom.settings import FileSettings, Settings
from tests import databases as test_databases
from tests.conftest import make_settings
from tests.factories import pdf_bytes
from tests.polling import eventually
from tests.servers.http import serve_in_thread
from tests.servers.s3 import S3Server

LIMIT = 256 * 1024


def object_settings(s3: S3Server, prefix: str) -> dict[str, str]:
    return {
        "storage_url": f"s3://{s3.bucket}/{prefix}",
        "s3_endpoint_url": s3.endpoint,
        "s3_region": s3.region,
        "s3_access_key_id": s3.access_key_id,
        "s3_secret_access_key": s3.secret_access_key,
    }


@dataclass
class Storage:
    """Where a test's file contents go, and what is there now."""

    kind: str
    settings: FileSettings
    data_dir: Path
    s3: S3Server | None = None
    prefix: str | None = None

    def stored(self) -> list[str]:
        """The blobs (folder) or objects (bucket) stored now, by key."""
        if self.s3 is None:
            root = self.data_dir / "blobs"
            return sorted(p.name for p in root.rglob("*-*") if p.parent.name != "tmp")
        bucket = S3Store(
            self.s3.bucket,
            prefix=self.prefix,
            endpoint=self.s3.endpoint,
            region=self.s3.region,
            access_key_id=self.s3.access_key_id,
            secret_access_key=self.s3.secret_access_key,
            client_options={"allow_http": True},
        )
        return sorted(o["path"].rsplit("/", 1)[-1] for o in obstore.list(bucket).collect())

    def staged(self) -> list[Path]:
        """Uploads left in a staging folder."""
        folders = [self.data_dir / "blobs" / "tmp", self.data_dir / "uploads"]
        return [p for folder in folders if folder.exists() for p in folder.iterdir()]


@pytest.fixture(params=["folder", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    data_dir = tmp_path / "data"
    if request.param == "folder":
        return Storage("folder", FileSettings(max_file_bytes=LIMIT), data_dir)
    s3: S3Server = request.getfixturevalue("s3")
    prefix = s3.new_prefix()
    fields = object_settings(s3, prefix)
    return Storage("s3", FileSettings(max_file_bytes=LIMIT, **fields), data_dir, s3, prefix)


def _settings(database_url: str, storage: Storage) -> Settings:
    return make_settings(database_url, storage.data_dir, files=storage.settings)


async def _removed(store: BlobStorage) -> None:
    if isinstance(store, ObjectBlobStore):
        await store.removed()


class TestStore:
    async def test_placed_read_and_removed(self, storage: Storage, tmp_path: Path) -> None:
        store = files.blob_store(_settings("sqlite+aiosqlite:///unused.db", storage))
        assert isinstance(store, BlobStore if storage.kind == "folder" else ObjectBlobStore)
        content = os.urandom(200_000)
        async with store.writer(limit=LIMIT) as writer:
            await writer.write(content)
            staged = await writer.finish()
        key = store.new_key(staged.sha256)
        await store.place(staged, key)
        assert storage.stored() == [key]
        assert storage.staged() == []
        assert b"".join([c async for c in await store.open(key)]) == content
        with store.content(key).open("rb") as handle:
            assert handle.read(1000) == content[:1000]
            handle.seek(0)
            assert handle.read() == content
        assert store.content(key).read_bytes() == content
        store.remove(key)
        await _removed(store)
        assert storage.stored() == []


@pytest.fixture
async def client(
    databases: test_databases.DatabaseFactory, storage: Storage
) -> AsyncIterator[httpx.AsyncClient]:
    settings = _settings(await databases.clone(), storage)
    app = create_app(settings)
    with serve_in_thread(app) as url:
        engine = create_engine(settings.resolved_database_url, pool_size=1)
        async with create_sessionmaker(engine)() as session, session.begin():
            organization = await auth.create_organization(session, "files", SystemClock().now())
        await engine.dispose()
        async with httpx.AsyncClient(
            base_url=url, headers={"REB-APIKEY": organization.api_key}, timeout=60
        ) as http:
            yield http


class TestThroughTheApi:
    async def test_an_upload_is_stored_once_and_downloaded_byte_for_byte(
        self, client: httpx.AsyncClient, storage: Storage
    ) -> None:
        content = pdf_bytes() + os.urandom(100_000)
        ids = []
        for name in ("a.pdf", "b.pdf"):
            response = await client.post("/files", files={"file": (name, content)})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        assert len(storage.stored()) == 1  # the same content, kept once
        download = await client.get(f"/files/{ids[1]}/download")
        assert download.status_code == 200
        assert download.content == content
        assert storage.staged() == []

    async def test_a_refused_upload_leaves_nothing(
        self, client: httpx.AsyncClient, storage: Storage
    ) -> None:
        response = await client.post("/files", files={"file": ("big.bin", os.urandom(LIMIT + 1))})
        assert response.status_code == 413, response.text
        assert storage.stored() == []
        assert storage.staged() == []

    async def test_the_last_files_deletion_removes_the_content(
        self, client: httpx.AsyncClient, storage: Storage
    ) -> None:
        content = os.urandom(50_000)
        ids = [
            (await client.post("/files", files={"file": (f"{n}.bin", content)})).json()["id"]
            for n in range(2)
        ]
        assert len(storage.stored()) == 1
        assert (await client.delete(f"/files/{ids[0]}")).status_code == 204
        assert len(storage.stored()) == 1  # another file still has it
        assert (await client.delete(f"/files/{ids[1]}")).status_code == 204

        async def gone() -> bool:  # deleted by the API's thread once the deletion committed
            return storage.stored() == []

        await eventually(gone, timeout=30, what="the content removed")


async def test_a_20_mib_attachment_goes_out_of_the_object_store_byte_for_byte(
    s3: S3Server, tmp_path: Path
) -> None:
    """bench/attachments.py's measurement (real `postroom api` and `postroom worker`, an SMTP
    server checking the attachment's SHA-256), with the files in the object store."""
    settings = object_settings(s3, s3.new_prefix())
    env = {f"POSTROOM_FILES__{k.upper()}": v for k, v in settings.items()}
    result = await attachments.measure(20, tmp_path, env=env)
    assert result["arrived_byte_for_byte"]
    growth = {row["process"]: row["x_file_size"] for row in result["processes"]}
    assert growth["worker"] < 2, result
    assert growth["api"] < 2, result
