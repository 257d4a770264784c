"""core/text.py: whatever a peer sent is stored as UTF-8 text PostgreSQL takes, within bounds."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.core.text import CUT_MARK, REPLACEMENT, storable

REPLACED = [chr(c) for c in range(32) if chr(c) not in "\t\r\n"] + [
    chr(c) for c in range(0x7F, 0xA0)
]


@pytest.mark.parametrize("char", REPLACED)
def test_nul_c0_but_tab_cr_lf_del_and_c1_become_the_replacement_character(char: str) -> None:
    assert storable(f"250 ok{char}queued", 100) == f"250 ok{REPLACEMENT}queued"


def test_tab_line_breaks_and_unicode_are_kept() -> None:
    text = "250-first\r\n250 second\tline — Zoë ✓ 😀"
    assert storable(text, 100) == text


def test_bytes_are_decoded_as_utf8_each_invalid_sequence_replaced() -> None:
    assert storable("Zoë".encode(), 10) == "Zoë"
    assert storable(b"ok \xff\xfe done", 20) == f"ok {REPLACEMENT}{REPLACEMENT} done"
    assert storable(b"nul \x00 here", 20) == f"nul {REPLACEMENT} here"


def test_escaped_bytes_become_the_replacement_character_other_surrogates_are_dropped() -> None:
    # aiosmtplib decodes a reply with surrogateescape: b"\xff" arrives as "\udcff".
    escaped = b"queued \xff".decode("utf-8", "surrogateescape")
    assert storable(escaped, 20) == f"queued {REPLACEMENT}"
    assert storable("a\ud800b\udbffc\ud83d\ude00", 20) == "abc"


def test_long_text_is_cut_with_a_mark_within_the_limit() -> None:
    assert storable("x" * 10, 10) == "x" * 10
    assert storable("x" * 11, 10) == "x" * 9 + CUT_MARK
    assert storable(b"y" * (1 << 20), 10) == "y" * 9 + CUT_MARK
    assert storable("z" * (1 << 20), 1) == CUT_MARK


def test_a_cut_inside_a_multibyte_character_of_bytes_is_still_marked() -> None:
    assert storable("é".encode() * 10, 5) == "éééé" + CUT_MARK
    assert storable("😀".encode() * 10, 3) == "😀😀" + CUT_MARK


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        storable("x", 0)


@given(value=st.one_of(st.text(), st.binary()), limit=st.integers(min_value=1, max_value=200))
def test_always_utf8_without_nul_or_controls_and_within_the_limit(
    value: str | bytes, limit: int
) -> None:
    stored = storable(value, limit)
    stored.encode("utf-8")  # raises on a lone surrogate
    assert "\x00" not in stored
    assert not any(c in stored for c in REPLACED)
    assert len(stored) <= limit
    # Nothing is cut that fits.
    if isinstance(value, str) and len(value) <= limit:
        assert len(stored) <= len(value)
        assert CUT_MARK not in stored or CUT_MARK in value


@given(value=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"])))
def test_text_with_nothing_to_replace_is_stored_as_it_is(value: str) -> None:
    assert storable(value, 10_000) == value
