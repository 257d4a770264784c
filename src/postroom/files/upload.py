"""The three ways a POST /files body carries a file, read as a stream into a BlobWriter:

- multipart/form-data: a `file` part, and `name`, `description`, `tags`, `isPublic`,
  `sourceType` parts as in the JSON form;
- JSON (FileCreateFromInline.yaml): the content base64-encoded in `file`;
- any other Content-Type: the body is the file (its name from a Content-Disposition header).

Every byte is counted as it arrives: past the limit, reading stops with a 413 and the writer's
partial file is deleted. A Content-Length that already says too much is refused before the body
is read. A JSON body must be parsed whole, so it is read into memory up to the base64 size of the
limit (plus room for the other fields); the decoded content goes to disk in chunks.
"""

import asyncio
import binascii
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from pydantic import ValidationError
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from postroom.errors import (
    BadRequest,
    FieldProblem,
    InvalidFields,
    PayloadTooLarge,
    invalid_field,
)
from postroom.files.blobstore import BlobWriter, StagedBlob
from postroom.files.schemas import FileMetadata

MULTIPART_ROOM = 1024 * 1024  # bytes of a multipart body besides the file: fields, headers
FIELD_BYTES = 64 * 1024  # one non-file multipart field
JSON_ROOM = 64 * 1024  # bytes of a JSON body besides the base64 content
_BASE64_SLICE = 4 * 64 * 1024  # base64 characters decoded at a time


@dataclass
class Upload:
    blob: StagedBlob
    metadata: FileMetadata
    filename: str | None
    """The name the body itself carried (a multipart filename, a Content-Disposition)."""


def json_body_limit(file_limit: int) -> int:
    """The largest JSON body a file of `file_limit` bytes can need: its base64 (with a line
    break, escaped as two characters, every 76), and room for the other fields."""
    return math.ceil(file_limit / 3) * 4 * 78 // 76 + JSON_ROOM


async def read_upload(
    content_type: str,
    content_length: int | None,
    disposition: str | None,
    stream: AsyncIterator[bytes],
    writer: BlobWriter,
) -> Upload:
    media_type, options = parse_options_header(content_type)
    if media_type == b"multipart/form-data":
        _refuse_length(content_length, writer.limit + MULTIPART_ROOM, writer.limit)
        return await _multipart(options.get(b"boundary"), stream, writer)
    if media_type == b"application/json" or media_type.endswith(b"+json"):
        _refuse_length(content_length, json_body_limit(writer.limit), writer.limit)
        return await _json(stream, writer)
    _refuse_length(content_length, writer.limit, writer.limit)
    async for chunk in stream:
        await writer.write(chunk)
    return Upload(await _finished(writer), FileMetadata(), _disposition_filename(disposition))


def _refuse_length(content_length: int | None, most: int, limit: int) -> None:
    if content_length is not None and content_length > most:
        raise PayloadTooLarge(f"the file is larger than the limit of {limit} bytes")


async def _finished(writer: BlobWriter) -> StagedBlob:
    if writer.size == 0:
        raise invalid_field("file", "the file is empty")
    return await writer.finish()


def _disposition_filename(value: str | None) -> str | None:
    if not value:
        return None
    header = EmailMessage()
    header["Content-Disposition"] = value  # parses RFC 2231 filename*=UTF-8''… too
    return _basename(header.get_filename())


def _basename(name: str | None) -> str | None:
    # Some browsers send the client's whole path; only the last part is the file's name.
    if name is None:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name or None


def _metadata(data: dict[str, Any]) -> FileMetadata:
    try:
        return FileMetadata.model_validate(data)
    except ValidationError as error:
        raise InvalidFields(
            *(
                FieldProblem(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
                for e in error.errors()
            )
        ) from None


async def _json(stream: AsyncIterator[bytes], writer: BlobWriter) -> Upload:
    most = json_body_limit(writer.limit)
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > most:
            raise PayloadTooLarge(f"the file is larger than the limit of {writer.limit} bytes")
    try:
        # Parsed off the event loop: a body near the limit takes tens of milliseconds.
        data = await asyncio.to_thread(json.loads, body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    del body
    if not isinstance(data, dict):
        raise invalid_field("body", "expected a JSON object")
    content = data.pop("file", None)
    if content is None:
        if "url" in data:
            raise invalid_field(
                "url", "uploading from a URL is not supported; send the content in 'file'"
            )
        raise invalid_field("file", "required: the content, base64-encoded")
    if not isinstance(content, str):
        raise invalid_field("file", "must be a base64-encoded string")
    metadata = _metadata(data)
    await _decode_base64(content, writer)
    return Upload(await _finished(writer), metadata, None)


async def _decode_base64(text: str, writer: BlobWriter) -> None:
    """Decodes in slices, so that the decoded bytes never sit in memory whole. Whitespace (line
    breaks) is skipped; a `data:…;base64,` prefix is allowed; missing end padding is tolerated."""
    start = 0
    if text.startswith("data:"):
        comma = text.find(",", 0, 256)
        if comma == -1 or not text[:comma].endswith(";base64"):
            raise invalid_field("file", "a data: URL must be base64-encoded")
        start = comma + 1
    carry = ""
    for offset in range(start, len(text), _BASE64_SLICE):
        piece = carry + "".join(text[offset : offset + _BASE64_SLICE].split())
        whole = len(piece) - len(piece) % 4
        carry = piece[whole:]
        await writer.write(_b64decode(piece[:whole]))
    if carry:
        await writer.write(_b64decode(carry + "=" * (-len(carry) % 4)))


def _b64decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise invalid_field("file", "is not valid base64") from None


class _Parts:
    """The multipart parser's callbacks: field values kept (bounded), the file's bytes queued
    for the writer (the callbacks are synchronous; the writer is not)."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.files = 0
        self.pending: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_name = b""
        self._header_value = b""
        self._name = ""
        self._is_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._value = [], bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers.append((self._header_name.lower(), self._header_value))
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        disposition = next((v for k, v in self._headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise BadRequest("a multipart part has no name in its Content-Disposition")
        self._name = _text(options[b"name"])
        self._is_file = self._name == "file"
        if self._is_file:
            self.files += 1
            if self.files > 1:
                raise invalid_field("file", "one file per upload")
            if b"filename" in options:
                self.filename = _basename(_text(options[b"filename"]))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.pending.append(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > FIELD_BYTES:
            raise invalid_field(self._name, f"longer than {FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if not self._is_file:
            self.fields.setdefault(self._name, []).append(_text(bytes(self._value)))


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def _multipart(
    boundary: bytes | None, stream: AsyncIterator[bytes], writer: BlobWriter
) -> Upload:
    if not boundary:
        raise BadRequest("a multipart/form-data body needs a boundary")
    parts = _Parts()
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    most, seen = writer.limit + MULTIPART_ROOM, 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > most:
                raise PayloadTooLarge(f"the file is larger than the limit of {writer.limit} bytes")
            parser.write(chunk)
            for data in parts.pending:
                await writer.write(data)
            parts.pending.clear()
        parser.finalize()
    except MultipartParseError:
        raise BadRequest("the multipart/form-data body is malformed") from None
    if parts.files == 0:
        raise invalid_field("file", "required: a part named 'file' with the content")
    return Upload(await _finished(writer), _form_metadata(parts.fields), parts.filename)


def _form_metadata(fields: dict[str, list[str]]) -> FileMetadata:
    data: dict[str, Any] = {}
    for key in ("name", "description", "sourceType"):
        if key in fields:
            data[key] = fields[key][-1]
    tags = fields.get("tags", []) + fields.get("tags[]", [])
    if tags:
        data["tags"] = tags
    if "isPublic" in fields:
        flag = fields["isPublic"][-1].strip().lower()
        if flag not in {"true", "false", "1", "0", ""}:
            raise invalid_field("isPublic", "must be true or false")
        data["isPublic"] = flag in {"true", "1"}
    return _metadata(data)
