"""core/control_characters.py: what may reach a header line or a secret."""

import pytest

from postroom.core.control_characters import header_text, secret_text

CONTROLS = [chr(c) for c in range(32) if chr(c) != "\t"] + ["\x7f"]


@pytest.mark.parametrize("char", CONTROLS)
def test_every_c0_control_but_tab_and_del_are_refused_everywhere(char: str) -> None:
    for check in (header_text, secret_text):
        with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
            check(f"a{char}b")


def test_a_tab_is_header_whitespace_but_not_part_of_a_secret() -> None:
    assert header_text("a\tb") == "a\tb"
    with pytest.raises(ValueError, match="U\\+0009"):
        secret_text("a\tb")


def test_printable_text_and_non_ascii_pass() -> None:
    assert header_text("Zoë's Shop, Inc. — ✓") == "Zoë's Shop, Inc. — ✓"
    assert secret_text("pa55-w0rd!") == "pa55-w0rd!"
