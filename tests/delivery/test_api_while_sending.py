"""The API and the worker never wait on each other: no transaction is open during a send."""

import asyncio

from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.polling import eventually
from tests.servers.smtp import smtp_server


class TestApiWhileSending:
    async def test_writes_and_reads_complete_while_a_send_is_in_flight(
        self, harness_factory: HarnessFactory
    ) -> None:
        # The server sits on the DATA reply for 3 s: the worker is mid-send all that time.
        with smtp_server(hold_data_seconds=3) as smtp:
            async with harness_factory(
                smtp_url=f"smtp://127.0.0.1:{smtp.port}", send_timeout_seconds=10
            ) as h:
                first = await make_message(h.client, status="outbox")
                sending = asyncio.create_task(h.worker.run_once())

                async def attempt_open() -> bool:
                    attempts = await h.attempts(first["id"])
                    return len(attempts) == 1 and attempts[0]["outcome"] is None

                await eventually(attempt_open, timeout=10, what="the send to start")

                # Were a lock held across the send (on SQLite: the one write lock), each of
                # these would wait for the send to end; they must all finish before it does.
                second = await make_message(h.client, status="outbox")
                draft = await make_message(h.client)
                sent_draft = await h.client.patch(
                    f"/email-messages/{draft['id']}", json={"status": "outbox"}
                )
                listing = await h.client.get("/email-messages", params={"filter": "status:outbox"})
                assert not sending.done()

                assert sent_draft.status_code == 200
                assert {m["id"] for m in listing.json()} == {first["id"], second["id"], draft["id"]}
                assert await sending == 1
                assert (await h.message(first["id"]))["status"] == "sent"
                assert len(smtp.received) == 1
