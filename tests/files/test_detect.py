"""files/detect.py: a file's type from its content; the name only picks among text types."""

import pytest

from postroom.files.detect import Detected, detect, suffix
from tests.factories import pdf_bytes, png_bytes


class TestDetect:
    @pytest.mark.parametrize(
        ("head", "is_text", "name", "expected"),
        [
            (png_bytes(), False, "notes.txt", Detected("image/png", "png")),
            (pdf_bytes(), False, "logo.png", Detected("application/pdf", "pdf")),
            (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", False, None, Detected("image/gif", "gif")),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", False, "a.jpeg", Detected("image/jpeg", "jpg")),
            (b"a,b\n1,2\n", True, "Export.CSV", Detected("text/csv", "csv")),
            (b'{"a": 1}', True, "data.json", Detected("application/json", "json")),
            (b"hello", True, "hello.exe", Detected("text/plain", "txt")),
            (b"hello", True, None, Detected("text/plain", "txt")),
            (b"\x00\x01binary", False, "table.csv", Detected("application/octet-stream", "csv")),
            (b"\x00\x01binary", False, None, Detected("application/octet-stream", "bin")),
        ],
    )
    def test_type_comes_from_content(
        self, head: bytes, is_text: bool, name: str | None, expected: Detected
    ) -> None:
        assert detect(head, is_text=is_text, name=name) == expected

    @pytest.mark.parametrize(
        ("name", "ext"),
        [("a.PDF", "pdf"), ("archive.tar.gz", "gz"), ("noext", ""), ("x.we!rd", ""), (None, "")],
    )
    def test_suffix_is_the_lower_cased_extension(self, name: str | None, ext: str) -> None:
        assert suffix(name) == ext
