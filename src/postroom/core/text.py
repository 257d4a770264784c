"""Text from outside (a mail server's reply, a provider's body, an error's message) made safe to
store: whatever a peer sent, the result encodes to UTF-8 and PostgreSQL takes it.

- bytes are decoded as UTF-8, each invalid sequence becoming U+FFFD;
- NUL and the other C0 controls but tab, CR and LF, DEL and the C1 controls become U+FFFD
  (PostgreSQL refuses NUL in text; the others have no place in a stored reply either);
- a surrogate standing for an undecodable byte (U+DC80 to U+DCFF, as Python's surrogateescape
  decodes it, and aiosmtplib with it) becomes U+FFFD too, like the byte it stands for; any other
  lone surrogate is dropped (none can be encoded to UTF-8);
- the text is cut to `limit` characters, its last one "…" when something was cut.
"""

import re

REPLACEMENT = "\ufffd"
CUT_MARK = "…"

# C0 but tab (09), LF (0A) and CR (0D); DEL and C1 (7F-9F); escaped bytes (DC80-DCFF).
_REPLACED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: str | bytes, limit: int) -> str:
    """`value` as text safe to store, at most `limit` (at least 1) characters long."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if isinstance(value, bytes):
        # A character is at most 4 bytes: what is kept still decodes to more than `limit`
        # characters when anything was left out, so the cut is marked below.
        value = value[: 4 * (limit + 1)].decode("utf-8", "replace")
    cut = len(value) > limit
    text = _SURROGATE.sub("", _REPLACED.sub(REPLACEMENT, value[: limit + 1]))
    if cut:
        return text[: limit - 1] + CUT_MARK
    return text
