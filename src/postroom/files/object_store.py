"""File contents in an object store through the S3 API (POSTROOM_FILES__STORAGE_URL=s3://bucket/
prefix), for hosts that share nothing but the database, Redis and the store.

The client is obstore (the Rust object_store crate behind a small Python API): streamed
multipart uploads and ranged, buffered reads without holding an object in memory, async and
sync calls both, one wheel with no dependency of its own. (aiobotocore would add aiohttp and
pin botocore to its own range, for the same five calls.)

The same guarantees as the blob folder (files/blobstore.py), the same keys: an upload is staged
in a local folder while it is counted and hashed (past the size limit nothing reaches the
store); a new content is then uploaded under `<prefix>/<ab>/<sha256>-<ulid>` in parts of
PART_BYTES, read from the staged file, before the row that names it commits; the staged file
is deleted either way. An object is deleted once the transaction that dropped its last file
has committed. A send reads the object a buffer at a time (delivery/mime.py).
"""

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import obstore
from obstore.store import S3Store

from postroom.files.blobstore import READ_BYTES, BlobStore, BlobWriter, StagedBlob

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024
_KEY = re.compile(r"[0-9a-f]{64}-[0-9A-Z]{26}")


def s3_store(
    storage_url: str,
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> S3Store:
    """The bucket and prefix of `s3://bucket/prefix`, at `endpoint_url` (default: AWS's)."""
    bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
    options: dict[str, Any] = {"region": region}
    if endpoint_url:
        options["endpoint"] = endpoint_url
    if access_key_id and secret_access_key:
        options["access_key_id"] = access_key_id
        options["secret_access_key"] = secret_access_key
    return S3Store(
        bucket,
        prefix=prefix.strip("/") or None,
        client_options={"allow_http": bool(endpoint_url and endpoint_url.startswith("http://"))},
        **options,
    )


class ObjectBlobStore:
    def __init__(self, store: S3Store, staging: Path) -> None:
        self.store = store
        self.staging = staging
        self._removing: set[asyncio.Task[None]] = set()

    def writer(self, limit: int) -> BlobWriter:
        return BlobWriter(self.staging, limit)

    def new_key(self, sha256: str) -> str:
        return BlobStore.new_key(sha256)

    async def place(self, staged: StagedBlob, key: str) -> None:
        try:
            with staged.path.open("rb") as content:
                await obstore.put_async(
                    self.store, _name(key), content, chunk_size=PART_BYTES, max_concurrency=4
                )
        finally:
            staged.path.unlink(missing_ok=True)

    def remove(self, key: str) -> None:
        # Called when a transaction has ended (db/hooks.py), on the event loop: the delete runs
        # beside it, and one that fails leaves an object no row names, which costs only space.
        task = asyncio.get_running_loop().create_task(self._remove(key))
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)

    async def _remove(self, key: str) -> None:
        try:
            await obstore.delete_async(self.store, _name(key))
        except Exception:
            log.exception("could not delete a stored file's object", extra={"blob": key})

    async def removed(self) -> None:
        """Waits for the deletes under way (tests; a stopping process)."""
        while self._removing:
            await asyncio.gather(*self._removing)

    def discard(self, staged: StagedBlob) -> None:
        BlobStore.discard(staged)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        found = await obstore.get_async(self.store, _name(key))
        return _chunks(found.stream(min_chunk_size=READ_BYTES))

    def content(self, key: str) -> "StoredObject":
        return StoredObject(self.store, _name(key))


class StoredObject:
    """An object as a send reads it: opened for buffered, ranged reads, or read whole."""

    def __init__(self, store: S3Store, name: str) -> None:
        self._store = store
        self._name = name

    def open(self, mode: Literal["rb"]) -> BinaryIO:
        if mode != "rb":
            raise ValueError("objects are opened for reading only")
        reader = obstore.open_reader(self._store, self._name, buffer_size=READ_BYTES)
        return io.BufferedReader(_ObjectReader(reader), buffer_size=READ_BYTES)

    def read_bytes(self) -> bytes:
        return bytes(obstore.get(self._store, self._name).bytes())


class _ObjectReader(io.RawIOBase):
    """obstore's reader as a raw binary stream (what io.BufferedReader wraps)."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._reader.read(len(buffer))
        size = len(data)
        memoryview(buffer).cast("B")[:size] = memoryview(data)
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position: int = self._reader.seek(offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._reader.tell()
        return position

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


async def _chunks(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)


def _name(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a blob key: {key!r}")
    return f"{key[:2]}/{key}"
