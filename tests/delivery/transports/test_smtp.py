"""delivery/transports/smtp.py: the parts of streaming DATA that the worker tests do not isolate."""

import pytest

from postroom.delivery.transports.smtp import DotStuffer


class TestDotStuffer:
    @pytest.mark.parametrize(
        "chunks",
        [
            [b".a\r\nb\r\n.c\r\n"],
            [b".a\r\n", b".b\r\n", b"c"],
            [b"a\r", b"\n.", b"b\r\n"],
            [b"a\r\n", b"", b".b"],
        ],
    )
    def test_a_dot_at_a_line_start_is_doubled_wherever_the_chunks_split(
        self, chunks: list[bytes]
    ) -> None:
        stuffer = DotStuffer()
        sent = b"".join(stuffer.feed(c) for c in chunks) + stuffer.end()
        whole = b"".join(chunks)
        expected = whole.replace(b"\r\n.", b"\r\n..")
        expected = b"." + expected if expected.startswith(b".") else expected
        if not expected.endswith(b"\r\n"):
            expected += b"\r\n"
        assert sent == expected + b".\r\n"

    def test_the_end_mark_follows_a_line_break(self) -> None:
        stuffer = DotStuffer()
        assert stuffer.feed(b"done\r\n") == b"done\r\n"
        assert stuffer.end() == b".\r\n"
