"""A webhook's `filter` (the collection filter grammar, over the email message resource's
fields) parsed at write time and applied in Python to one message at emit time."""

from datetime import UTC, datetime
from typing import Any

from postroom.core.listing import Condition, ListQueryError, Term, parse_filter
from postroom.messages.schemas import LIST_FIELDS


def parse(raw: str | None) -> tuple[Condition, ...]:
    """Raises ListQueryError (naming the field) when the filter does not parse."""
    if raw is None or not raw.strip():
        return ()
    return parse_filter(raw, LIST_FIELDS)


def is_valid(raw: str | None) -> str | None:
    """Why the filter does not parse (None: it does)."""
    try:
        parse(raw)
    except ListQueryError as error:
        return str(error)
    return None


def matches(conditions: tuple[Condition, ...], message: Any) -> bool:
    """Whether the message passes every condition, as a list query's WHERE would judge it."""
    for condition in conditions:
        value = getattr(message, condition.field)
        if condition.allowed and not any(_term(value, t) for t in condition.allowed):
            return False
        if any(value is not None and _term(value, t) for t in condition.excluded):
            return False
    return True


def _term(value: Any, term: Term) -> bool:
    if value is None:
        return False
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        if not term.is_range:
            return bool(value == term.low)
        if term.low is not None and value < term.low:
            return False
        return not (term.high is not None and value > term.high)
    except TypeError:
        return False
