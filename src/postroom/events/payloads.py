"""Reading what a mail service posts to its event webhook: untrusted JSON even once its signing
checks out (a field of the wrong type, a huge string, a NUL byte, a time out of range), so every
value is taken only when it has the expected shape and is otherwise treated as absent."""

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from postroom.core.text import storable
from postroom.errors import BadRequest

MAX_ID = 200  # characters of a provider's message or event id that are kept
MAX_ADDRESS = 254  # RFC 5321's path limit


def json_body(body: bytes) -> Any:
    """The request's JSON; a 400 for anything else (the provider's signing already passed)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BadRequest("the body is not JSON") from error


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any, limit: int) -> str | None:
    """A non-empty string as storable text, or None (numbers are taken as their digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return storable(value.strip(), limit)


def identifier(value: Any) -> str | None:
    return text(value, MAX_ID)


def address(value: Any) -> str | None:
    """An email address as the provider reports it, or None when it is not one (it may end up
    on the blocklist: nothing without an @ or past the length an address can have)."""
    found = text(value, MAX_ADDRESS + 1)
    if found is None or len(found) > MAX_ADDRESS or "@" not in found:
        return None
    if any(c.isspace() for c in found):
        return None
    return found


def unix_time(value: Any) -> datetime | None:
    """Seconds since the epoch (a number or its digits, fractions allowed), or None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time (Postmark's, with an offset and up to 7 fraction digits), or None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        # Python takes at most 6 fraction digits; .NET writes 7.
        head, dot, rest = value.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if not dot or digits <= 6:
            return None
        try:
            parsed = datetime.fromisoformat(f"{head}.{rest[:6]}{rest[digits:]}")
        except ValueError:
            return None
    try:
        # Without an offset: UTC. Converted here so that a time at the calendar's edge with an
        # offset cannot overflow on the way into the database.
        return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)
    except OverflowError:
        return None


def is_recent(signed_at: datetime | None, now: datetime, tolerance_seconds: float) -> bool:
    """Whether a signed request's timestamp is within the tolerance of now, either way (a
    clock a little ahead is not an attack; a request replayed later is)."""
    return signed_at is not None and abs((now - signed_at).total_seconds()) <= tolerance_seconds
