"""files/blobstore.py: uploads written aside, counted, hashed, and renamed into place."""

import hashlib
import os
from pathlib import Path

import pytest

from postroom.errors import PayloadTooLarge
from postroom.files.blobstore import HEAD_BYTES, BlobStore


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


class TestBlobWriter:
    async def test_a_finished_upload_knows_its_size_hashes_and_head(self, tmp_path: Path) -> None:
        store = BlobStore(tmp_path)
        content = os.urandom(700_000)
        async with store.writer(limit=len(content)) as writer:
            for start in range(0, len(content), 65_536):
                await writer.write(content[start : start + 65_536])
            staged = await writer.finish()
        assert staged.size == len(content)
        assert staged.sha256 == hashlib.sha256(content).hexdigest()
        assert staged.sha1 == hashlib.sha1(content, usedforsecurity=False).hexdigest()
        assert staged.head == content[:HEAD_BYTES]
        assert staged.path.read_bytes() == content
        assert staged.path.parent == tmp_path / "tmp"
        assert not staged.is_text

    async def test_going_past_the_limit_raises_and_deletes_the_partial_file(
        self, tmp_path: Path
    ) -> None:
        async def upload() -> None:
            async with BlobStore(tmp_path).writer(limit=300_000) as writer:
                await writer.write(os.urandom(299_999))
                await writer.write(b"ab")

        with pytest.raises(PayloadTooLarge):
            await upload()
        assert _files(tmp_path) == []

    async def test_any_error_inside_the_block_deletes_the_partial_file(
        self, tmp_path: Path
    ) -> None:
        async def upload() -> None:
            async with BlobStore(tmp_path).writer(limit=10**6) as writer:
                await writer.write(os.urandom(400_000))
                raise ConnectionError("client went away")

        with pytest.raises(ConnectionError):
            await upload()
        assert _files(tmp_path) == []

    @pytest.mark.parametrize(
        ("content", "is_text"),
        [
            ("plain text, ünïcödé, tabs\tand\r\nlines\n".encode() * 20_000, True),
            ("€".encode() * 100_000, True),  # a character split across every flush
            (b"text until a NUL\x00", False),
            (b"latin-1 \xe9t\xe9", False),
        ],
    )
    async def test_text_is_valid_utf8_without_control_characters(
        self, tmp_path: Path, content: bytes, is_text: bool
    ) -> None:
        async with BlobStore(tmp_path).writer(limit=len(content)) as writer:
            for start in range(0, len(content), 100_001):
                await writer.write(content[start : start + 100_001])
            staged = await writer.finish()
        assert staged.is_text is is_text


class TestBlobStore:
    async def test_a_placed_blob_is_named_by_its_hash_and_read_back_in_chunks(
        self, tmp_path: Path
    ) -> None:
        store = BlobStore(tmp_path)
        content = os.urandom(600_000)
        async with store.writer(limit=len(content)) as writer:
            await writer.write(content)
            staged = await writer.finish()
        key = store.new_key(staged.sha256)
        await store.place(staged, key)
        assert not staged.path.exists()
        assert store.path(key) == tmp_path / staged.sha256[:2] / key
        assert key.startswith(staged.sha256 + "-")
        chunks = [c async for c in await store.open(key)]
        assert len(chunks) > 1
        assert b"".join(chunks) == content
        store.remove(key)
        assert _files(tmp_path) == []

    def test_a_key_that_is_not_a_blob_name_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="not a blob key"):
            BlobStore(tmp_path).path("../../etc/passwd")
