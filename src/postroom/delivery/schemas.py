"""The wire shape of a delivery attempt (GET /email-messages/{id}/attempts)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from postroom.api.wire import WireTime
from postroom.delivery.models import DeliveryAttempt


class DeliveryAttemptRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    number: int = Field(description="1 for the first attempt.")
    transport: str = Field(description="smtp, eml, or an email service provider.")
    credential_hash: str | None = Field(alias="credentialHash")
    started_time: WireTime = Field(alias="startedTime")
    finished_time: WireTime | None = Field(alias="finishedTime")
    outcome: Literal["sent", "transient", "permanent", "unknown", "suppressed"] | None = Field(
        description="null while under way; unknown when cut off after the data went out "
        "(the service may have accepted it); suppressed when every recipient is on the "
        "blocklist and nothing was sent"
    )
    response_code: int | None = Field(alias="responseCode")
    response_body: str | None = Field(alias="responseBody")
    duration_ms: int | None = Field(alias="durationMs")
    provider_message_id: str | None = Field(
        None,
        alias="providerMessageId",
        description="the mail service's id for the accepted message, where its answer has one",
    )
    suppressed_recipients: list[str] = Field(
        default_factory=list,
        alias="suppressedRecipients",
        description="recipients left out because they are on the blocklist",
    )

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> "DeliveryAttemptRead":
        return cls(
            id=attempt.id,
            number=attempt.number,
            transport=attempt.transport,
            credential_hash=attempt.credential_id,
            started_time=attempt.started_at,
            finished_time=attempt.finished_at,
            outcome=attempt.outcome,
            response_code=attempt.response_code,
            response_body=attempt.response_body,
            duration_ms=attempt.duration_ms,
            provider_message_id=attempt.provider_message_id,
            suppressed_recipients=attempt.suppressed or [],
        )
