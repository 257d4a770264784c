"""postroom's webhook event types (Rebilly's enum has none for email) and what one carries."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    SENT = "email-message-sent"
    FAILED = "email-message-failed"
    ATTEMPT_FAILED = "email-message-attempt-failed"
    """A transient failure: the message stays in outbox and will be tried again."""
    OUTCOME_UNKNOWN = "email-message-outcome-unknown"
    """An attempt cut off after the data went out: the service may have accepted it."""
    DELIVERED = "email-message-delivered"
    """The recipient's mail server accepted it (as the provider reports)."""
    DEFERRED = "email-message-deferred"
    """The recipient's server delayed it; the provider keeps trying."""
    BOUNCED = "email-message-bounced"
    """Refused by the recipient's server (hard: for good; soft: a full mailbox and the like)."""
    COMPLAINED = "email-message-complained"
    """The recipient marked it as spam."""
    UNSUBSCRIBED = "email-message-unsubscribed"
    """The recipient used the message's hosted one-click unsubscribe link."""


@dataclass(frozen=True)
class EventToEmit:
    type: EventType
    message_id: str
    attempt: Mapping[str, Any] | None = None
    """The attempt as GET /email-messages/{id}/attempts shows it, where there is one."""
    event: Mapping[str, Any] | None = None
    """The provider event as GET /email-messages/{id}/events shows it, where there is one."""
