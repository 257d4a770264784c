"""Prefixed, time-sortable resource ids: a prefix and a ULID (`mail_msg_01JD…`)."""

from ulid import ULID


def new_id(prefix: str) -> str:
    """A new id; ids made later sort after earlier ones (millisecond resolution)."""
    return f"{prefix}{ULID()}"
