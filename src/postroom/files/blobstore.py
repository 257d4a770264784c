"""Content-addressed blob storage in a directory, and the streaming writer that fills it.

An upload is written chunk by chunk to `tmp/<random>.partial`, hashed (SHA-256 names it, SHA-1
is what the API shows) and counted on the way; past the size limit the writer stops at once and
the partial file is deleted. A finished file is fsynced, then renamed to its real name, so a
crash never leaves half a blob under a real name.

A blob's name is `<sha256>-<ulid>`: the hash of its content and the id of the database row that
keeps it (files/models.py FileBlob). Files with the same content share that one blob. The ULID
makes each incarnation of a blob distinct: when the last file of a content goes, its blob is
unlinked after the commit, and the same content uploaded again at that moment gets a new row and
a new name, which the late unlink can never touch.
"""

import asyncio
import codecs
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from postroom.core.ids import new_id
from postroom.errors import PayloadTooLarge

HEAD_BYTES = 8192  # what content detection looks at (files/detect.py)
_FLUSH_BYTES = 256 * 1024  # written (and hashed) a quarter MiB at a time, off the event loop
READ_BYTES = 256 * 1024
# Bytes that do not occur in text: C0 controls other than tab, LF, VT, FF, CR, ESC; and DEL.
_NOT_TEXT = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


@dataclass
class StagedBlob:
    """A finished upload in the tmp folder, not yet anywhere a file row can name it."""

    path: Path
    size: int
    sha256: str
    sha1: str
    head: bytes
    is_text: bool
    """Valid UTF-8 with no control characters besides whitespace and ESC."""


class BlobWriter:
    """Takes an upload's chunks as they arrive; raises PayloadTooLarge at the first byte past
    `limit`. Use it as an async context manager: leaving it by an error deletes the file."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._folder = folder
        self._path: Path | None = None
        self._handle: BinaryIO | None = None
        self._buffer = bytearray()
        self._head = bytearray()
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._is_text = True

    async def __aenter__(self) -> "BlobWriter":
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.discard()

    async def write(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.limit:
            raise PayloadTooLarge(f"the file is larger than the limit of {self.limit} bytes")
        self.size += len(chunk)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        self._buffer += chunk
        if len(self._buffer) >= _FLUSH_BYTES:
            await self._flush()

    async def finish(self) -> StagedBlob:
        """The staged blob, its bytes on disk (fsynced) and its hashes known."""
        await self._flush(final=True)
        assert self._path is not None
        return StagedBlob(
            path=self._path,
            size=self.size,
            sha256=self._sha256.hexdigest(),
            sha1=self._sha1.hexdigest(),
            head=bytes(self._head),
            is_text=self._is_text,
        )

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        self._buffer.clear()

    async def _flush(self, *, final: bool = False) -> None:
        data, self._buffer = self._buffer, bytearray()
        await asyncio.to_thread(self._write, data, final)

    def _write(self, data: bytearray, final: bool) -> None:
        if self._handle is None:
            self._folder.mkdir(parents=True, exist_ok=True)
            self._path = self._folder / f"{secrets.token_hex(16)}.partial"
            self._handle = self._path.open("xb")
        self._sha256.update(data)
        self._sha1.update(data)
        if self._is_text:
            try:
                self._utf8.decode(data, final=final)
            except UnicodeDecodeError:
                self._is_text = False
            else:
                self._is_text = _NOT_TEXT.search(data) is None
        self._handle.write(data)
        if final:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None


class BlobStore:
    """Blobs under `root`: `ab/ab…(sha256)-<ulid>`, and uploads under way in `root/tmp`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def writer(self, limit: int) -> BlobWriter:
        return BlobWriter(self.root / "tmp", limit)

    @staticmethod
    def new_key(sha256: str) -> str:
        return f"{sha256}-{new_id('')}"

    def path(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}-[0-9A-Z]{26}", key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key

    async def place(self, staged: StagedBlob, key: str) -> None:
        """Moves a staged blob to its real name (atomic rename; the directory fsynced too)."""
        await asyncio.to_thread(self._place, staged.path, self.path(key))

    @staticmethod
    def _place(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    @staticmethod
    def discard(staged: StagedBlob) -> None:
        staged.path.unlink(missing_ok=True)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks, read off the event loop. Opened now: a later unlink does
        not cut short a read under way."""
        return _chunks(await asyncio.to_thread(self.path(key).open, "rb"))

    def content(self, key: str) -> Path:
        """The blob as delivery reads it (delivery/mime.py Content)."""
        return self.path(key)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    """The rest of `handle` in chunks, read off the event loop; closes it at the end."""
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_BYTES):
            yield chunk
    finally:
        handle.close()


class Content(Protocol):
    """Where a stored file's bytes are read from at send time: a file of the blob folder (a
    Path) or an object of the object store (files/object_store.py)."""

    def open(self, mode: Literal["rb"]) -> BinaryIO: ...

    def read_bytes(self) -> bytes: ...


class BlobStorage(Protocol):
    """What keeps file contents: the blob folder (BlobStore) or an object store through the S3
    API (files/object_store.ObjectBlobStore). Either way an upload is staged in a local folder
    while it is counted and hashed, and stored under its key before the row that names it
    commits."""

    def writer(self, limit: int) -> BlobWriter: ...

    def new_key(self, sha256: str) -> str: ...

    async def place(self, staged: StagedBlob, key: str) -> None: ...

    def remove(self, key: str) -> None:
        """Removes the blob, after the transaction that dropped its last file committed (or
        the one that stored it rolled back); a blob that is not there is no error."""

    def discard(self, staged: StagedBlob) -> None: ...

    async def open(self, key: str) -> AsyncIterator[bytes]: ...

    def content(self, key: str) -> Content: ...
