"""Control characters kept out of what becomes a header line or a credential.

A line break in a subject or a display name is how headers get injected; ESC, NUL and the rest
of C0 (and DEL) have no business in a header either, and in a password or API key they are a
pasting accident that some server would otherwise interpret. Tab is folding whitespace in a
header, so header text may hold it; a secret may not."""

_DEL = "\x7f"


def _first_control(value: str, *, allow_tab: bool) -> str | None:
    for char in value:
        if (char < " " and not (allow_tab and char == "\t")) or char == _DEL:
            return char
    return None


def _refuse(char: str) -> ValueError:
    return ValueError(f"must not contain control characters (found U+{ord(char):04X})")


def header_text(value: str) -> str:
    """Text that becomes (part of) one header line: no C0 control but tab, no DEL."""
    char = _first_control(value, allow_tab=True)
    if char is not None:
        raise _refuse(char)
    return value


def secret_text(value: str) -> str:
    """A secret, username or file name: no C0 control at all (tab included), no DEL."""
    char = _first_control(value, allow_tab=False)
    if char is not None:
        raise _refuse(char)
    return value
