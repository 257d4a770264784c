"""What every transport is: one async `send` plus `aclose`, and the errors it may raise.

    DeliveryError                  the mail service did not accept the message
    ├── TransientError             try again later: timeout, connection, SMTP 4xx, HTTP 429/5xx;
    │   │                          `retry_after` carries a wait the service asked for
    │   └── OutcomeUnknownError    cut off after the data went out: it may have been accepted
    └── PermanentError             never: SMTP 5xx, other HTTP 4xx, bad credential

retry.py decides what happens next from these types alone.
"""

from dataclasses import dataclass
from typing import Protocol

from postroom.delivery.mime import OutgoingMessage


@dataclass(frozen=True)
class Receipt:
    """The service's acceptance: its reply code (SMTP) or HTTP status, its text or body, and
    its own id for the message where its answer has one (transports/correlation.py)."""

    code: int
    text: str
    provider_message_id: str | None = None


class DeliveryError(Exception):
    def __init__(self, text: str, *, code: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class TransientError(DeliveryError):
    def __init__(
        self, text: str, *, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(text, code=code)
        self.retry_after = retry_after


class OutcomeUnknownError(TransientError):
    pass


class PermanentError(DeliveryError):
    pass


class Transport(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> Receipt: ...

    async def aclose(self) -> None: ...


# The key under which postroom's message id travels in a provider's custom data (SendGrid
# custom_args, Postmark Metadata, Mailgun v: variables, SES tags) and comes back in its events.
MESSAGE_ID_KEY = "postroom_message_id"
