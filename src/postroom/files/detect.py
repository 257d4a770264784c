"""What a file is, from its content: never from the Content-Type or name a client sends.

Binary formats are known by their signature (the `filetype` package, pure Python, on the first
8 KiB). Content with no signature that is valid UTF-8 without control characters is text; only
then does the name choose among text types (a `.csv` is text/csv), so a name can never make
binary content pass for another type. Anything else is application/octet-stream.
"""

from dataclasses import dataclass
from pathlib import PurePosixPath

import filetype

OCTET_STREAM = "application/octet-stream"

# Text types a name may choose for content that is text; anything else is text/plain.
_TEXT_TYPES = {
    "txt": "text/plain",
    "text": "text/plain",
    "log": "text/plain",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "xml": "application/xml",
    "html": "text/html",
    "htm": "text/html",
    "md": "text/markdown",
    "ics": "text/calendar",
    "vcf": "text/vcard",
}


@dataclass(frozen=True)
class Detected:
    mime: str
    extension: str


def suffix(name: str | None) -> str:
    """The extension of a name, lower-cased, without its dot ('' when it has none)."""
    if not name:
        return ""
    ext = PurePosixPath(name.replace("\\", "/")).suffix.lower().removeprefix(".")
    return ext if ext.isalnum() and len(ext) <= 16 else ""


def detect(head: bytes, *, is_text: bool, name: str | None) -> Detected:
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return Detected(kind.mime, kind.extension)
    ext = suffix(name)
    if is_text and head:
        mime = _TEXT_TYPES.get(ext)
        return Detected(mime, ext) if mime else Detected("text/plain", "txt")
    return Detected(OCTET_STREAM, ext or "bin")
