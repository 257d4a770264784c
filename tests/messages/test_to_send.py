"""messages.messages_to_send: a message as delivery reads it, column by column, the same as the
ORM's instance of it."""

from postroom.messages import service as messages
from tests.factories import make_message
from tests.harness import HarnessFactory


async def test_the_rows_delivery_reads_are_the_messages_as_stored(
    harness_factory: HarnessFactory,
) -> None:
    async with harness_factory() as h:
        full = await make_message(
            h.client,
            status="outbox",
            cc=["cc@example.com"],
            bcc=["bcc@example.com"],
            replyTo=["support@example.com"],
            headers={"X-Campaign": "winter"},
            metadata={"order": "A-104427"},
            unsubscribeUrl="https://shop.example.com/unsubscribe/1",
        )
        plain = await make_message(h.client, status="draft")
        ids = [full["id"], plain["id"]]
        async with h.sessionmaker() as session, session.begin():
            rows = await messages.messages_to_send(session, [*ids, "mail_msg_missing"])
            stored = await messages.messages_for_delivery(session, ids)
            assert rows == {i: messages.MessageToSend.of(stored[i]) for i in ids}
        assert rows[full["id"]].reply_to == ["support@example.com"]
        assert rows[full["id"]].metadata_ == {"order": "A-104427"}
        assert rows[full["id"]].created_at.tzinfo is not None
