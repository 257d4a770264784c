"""`postroom bounces`: the SMTP server the bounce domain's MX points at. It takes mail only for
the per-message bounce addresses (core/bounce_address.py) and records each report received as
events on its message (events/reports.py reads them), in one transaction per received mail."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.core.bounce_address import message_of
from postroom.core.clock import Clock, SystemClock
from postroom.core.crypto import SecretBox
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.events import service
from postroom.events.models import EventKind
from postroom.events.reports import read_report
from postroom.events.service import ProviderEvent
from postroom.messages import service as messages
from postroom.messages.models import EmailMessage
from postroom.settings import EventSettings, Settings

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 10 * 1024 * 1024  # a DSN may return the whole message, attachments and all
MAX_RECIPIENTS = 10  # bounce addresses in one SMTP transaction
IDLE_TIMEOUT_SECONDS = 60


class BounceHandler:
    """aiosmtpd's handler: RCPT for bounce addresses only, DATA recorded as events."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        settings: EventSettings,
        clock: Clock,
    ) -> None:
        if not settings.bounce_domain:
            raise ValueError("POSTROOM_EVENTS__BOUNCE_DOMAIN is not set")
        self.domain = settings.bounce_domain
        self.sessionmaker = sessionmaker
        self.box = box
        self.settings = settings
        self.clock = clock

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if message_of(self.box, address, self.domain) is None:
            # Refused before DATA, so this is no open relay nor a mailbox for spam.
            return "550 5.1.1 no such mailbox here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        message_ids = [
            m for address in envelope.rcpt_tos if (m := message_of(self.box, address, self.domain))
        ]
        content = envelope.original_content or b""
        now = self.clock.now()
        # flufl.bounce's detectors run regular expressions over the whole mail: not on the loop.
        try:
            events = await asyncio.to_thread(read_report, content, now)
        except Exception:  # a parser's bug on odd input: the same mail would fail again
            log.exception("bounce report not readable", extra={"message_ids": message_ids})
            return "554 5.6.0 report not readable"
        try:
            recorded = await self.record(message_ids, events)
        except Exception:
            log.exception("bounce report not recorded", extra={"message_ids": message_ids})
            # The reporting server keeps the report and tries again later.
            return "451 4.3.0 not recorded; try again later"
        log.info(
            "bounce report received",
            extra={"message_ids": message_ids, "events": len(events), "recorded": recorded},
        )
        return "250 2.0.0 OK"

    async def record(self, message_ids: Sequence[str], events: Sequence[ProviderEvent]) -> int:
        """Records the events on each message, in one transaction; how many were recorded."""
        if not events:
            return 0
        recorded = 0
        async with self.sessionmaker() as session, session.begin():
            found = await messages.messages_for_delivery(session, message_ids)
            for message_id in dict.fromkeys(message_ids):
                message = found.get(message_id)
                if message is None:  # deleted since it was sent
                    continue
                result = await service.record(
                    session,
                    message.organization_id,
                    [_about(event, message) for event in events],
                    now=self.clock.now(),
                    settings=self.settings,
                )
                recorded += len(result.recorded)
        return recorded


def _about(event: ProviderEvent, message: EmailMessage) -> ProviderEvent:
    """The event on `message`, naming a recipient only if the message was sent to it: anyone
    who got the message knows its bounce address, and must not get a stranger blocklisted."""
    recipients = {
        a.lower() for a in (*message.to_addresses, *message.cc_addresses, *message.bcc_addresses)
    }
    recipient = event.recipient
    if recipient is not None and recipient.lower() not in recipients:
        recipient = None
    if recipient is None and event.kind == EventKind.COMPLAINED and len(recipients) == 1:
        # Feedback loops often redact the complainer; a message to one address says who it was.
        [recipient] = recipients
    # One report to the bounce addresses of two messages is an event on each.
    event_id = f"{event.provider_event_id}:{message.id}" if event.provider_event_id else None
    return replace(event, message_id=message.id, recipient=recipient, provider_event_id=event_id)


async def listen(
    handler: BounceHandler, host: str, port: int, *, max_bytes: int = MAX_REPORT_BYTES
) -> asyncio.Server:
    """The SMTP server on host:port (port 0: any free one), serving until closed; a mail over
    `max_bytes` is refused (552) as it arrives, never held whole."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(
            handler,
            data_size_limit=max_bytes,
            enable_SMTPUTF8=True,
            # Given a name, aiosmtpd skips socket.getfqdn(), a DNS lookup per connection.
            hostname=handler.domain,
            timeout=IDLE_TIMEOUT_SECONDS,
            loop=loop,
        ),
        host,
        port,
    )


async def run_bounces(
    settings: Settings, stop: asyncio.Event, *, clock: Clock | None = None
) -> None:
    """The bounce server with its own engine, until `stop` is set."""
    engine = create_engine(settings.resolved_database_url, pool_size=2)
    try:
        handler = BounceHandler(
            create_sessionmaker(engine),
            SecretBox(settings.stored_secret()),
            settings.events,
            clock or SystemClock(),
        )
        server = await listen(handler, settings.events.bounces_host, settings.events.bounces_port)
        log.info(
            "bounce server listening",
            extra={"host": settings.events.bounces_host, "port": settings.events.bounces_port},
        )
        async with server:
            await stop.wait()
    finally:
        await engine.dispose()
