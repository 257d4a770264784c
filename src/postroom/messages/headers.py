"""Which extra headers a message may ask for: any well-formed field name (RFC 5322 3.6.8) but
those that would change the message's structure, its routing or who it claims to be from, and
those postroom writes itself."""

import re

# Printable ASCII but the colon; a header line's name, short enough to fold a value after it.
NAME = re.compile(r"[!-9;-~]{1,76}")

FORBIDDEN = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",  # replyTo
        "subject",
        "date",
        "message-id",
        "mime-version",
        "return-path",
        "received",
        "dkim-signature",
        "domainkey-signature",
        "authentication-results",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "content-transfer-encoding",
    }
)
FORBIDDEN_PREFIXES = ("content-", "resent-", "arc-", "x-postroom-")


def refusal(name: str) -> str | None:
    """Why a message may not set this header, or None if it may."""
    if not NAME.fullmatch(name):
        return "not a header name (printable ASCII but ':' and space, at most 76 characters)"
    lowered = name.lower()
    if lowered in FORBIDDEN or lowered.startswith(FORBIDDEN_PREFIXES):
        return (
            f"{name} is set by postroom or changes the message's structure or routing; "
            "use the message's own fields (from, to, cc, bcc, replyTo, subject)"
        )
    return None
