"""events/payloads.py: values from a provider's JSON taken only in the shape expected."""

from datetime import UTC, datetime

import pytest

from postroom.errors import BadRequest
from postroom.events import payloads


class TestTimes:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2026-12-04T12:45:07Z", datetime(2026, 12, 4, 12, 45, 7, tzinfo=UTC)),
            # .NET's seven fraction digits and an offset, as Postmark writes them.
            (
                "2026-12-04T12:45:07.1234567-05:00",
                datetime(2026, 12, 4, 17, 45, 7, 123456, tzinfo=UTC),
            ),
            ("2026-12-04T12:45:07", datetime(2026, 12, 4, 12, 45, 7, tzinfo=UTC)),
            ("9999-12-31T23:59:59-14:00", None),  # past the calendar once in UTC
            ("yesterday", None),
            ("2026-12-04T12:45:07." + "1" * 50, None),
            (1733316307, None),
        ],
    )
    def test_iso_time(self, value: object, expected: datetime | None) -> None:
        assert payloads.iso_time(value) == expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (1513299569, datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)),
            ("1513299569", datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)),
            (1521472262.5, datetime(2018, 3, 19, 15, 11, 2, 500000, tzinfo=UTC)),
            ("nan", None),
            ("1e300", None),
            (True, None),
            (None, None),
            ([1], None),
        ],
    )
    def test_unix_time(self, value: object, expected: datetime | None) -> None:
        assert payloads.unix_time(value) == expected


class TestValues:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Someone@Example.com", "Someone@Example.com"),
            ("  spaced@example.com ", "spaced@example.com"),
            ("no at sign", None),
            ("two words@example.com", None),
            ("a" * 250 + "@example.com", None),
            ({"email": "x@example.com"}, None),
            (None, None),
        ],
    )
    def test_address(self, value: object, expected: str | None) -> None:
        assert payloads.address(value) == expected

    def test_text_is_storable_and_bounded(self) -> None:
        assert payloads.text("a\x00b", 10) == "a\ufffdb"
        assert payloads.text("x" * 50, 10) == "x" * 9 + "…"
        assert payloads.text(42, 10) == "42"
        assert payloads.text(False, 10) is None
        assert payloads.text("   ", 10) is None

    def test_a_body_that_is_not_json_is_400(self) -> None:
        for body in (b"{", b"\xff", b"[" * 100_000):
            with pytest.raises(BadRequest):
                payloads.json_body(body)

    def test_is_recent_either_way_within_the_tolerance(self) -> None:
        now = datetime(2026, 12, 4, tzinfo=UTC)
        assert payloads.is_recent(payloads.unix_time(now.timestamp() - 300), now, 300)
        assert payloads.is_recent(payloads.unix_time(now.timestamp() + 300), now, 300)
        assert not payloads.is_recent(payloads.unix_time(now.timestamp() - 301), now, 300)
        assert not payloads.is_recent(None, now, 300)
