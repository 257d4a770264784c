"""Both halves together, through the API only: a webhook and its credential created with
POST, a message delivered by the real worker to the real SMTP server, the event sent by the
real dispatcher to a real receiver, tracked, and resent."""

import json

from standardwebhooks import Webhook as Verifier

from tests.factories import make_message
from tests.harness import HarnessFactory
from tests.servers.smtp import smtp_server
from tests.servers.webhook_receiver import webhook_receiver
from tests.webhooks.test_api import make_webhook
from tests.webhooks.test_dispatcher import dispatcher_for


async def test_a_sent_message_reaches_the_receiver_signed_authenticated_and_tracked(
    harness_factory: HarnessFactory,
) -> None:
    with smtp_server() as smtp, webhook_receiver() as receiver:
        async with harness_factory(smtp_url=f"smtp://127.0.0.1:{smtp.port}") as h:
            receiver.require_auth("/e2e", "basic", "hook-user", "hook-pass")
            credential = await h.client.post(
                "/service-credentials/webhook",
                json={
                    "host": "127.0.0.1",
                    "auth": {"type": "basic", "username": "hook-user", "password": "hook-pass"},
                },
            )
            assert credential.status_code == 201, credential.text
            hook = await make_webhook(
                h.client, url=receiver.url + "/e2e", credentialHash=credential.json()["id"]
            )
            message = await make_message(h.client, status="outbox")
            assert await h.deliver() == 1

            dispatcher = dispatcher_for(h)
            try:
                assert await dispatcher.run_once() == 1
                [got] = receiver.received("/e2e")
                assert got.authorized is True
                Verifier(hook["secret"]).verify(got.body, got.headers)
                body = json.loads(got.body)
                assert body["type"] == "email-message-sent"
                assert body["data"]["emailMessage"]["id"] == message["id"]
                assert body["data"]["emailMessage"]["status"] == "sent"

                tracked = await h.client.get("/tracking/webhooks")
                assert tracked.status_code == 200, tracked.text
                [entry] = tracked.json()
                assert entry["status"] == 200
                assert entry["eventType"] == "email-message-sent"
                assert entry["entityId"] == message["id"]
                assert entry["attempt"] == 1
                assert "authorization" not in {k.lower() for k in entry["requestHeaders"]}

                resent = await h.client.post(f"/tracking/webhooks/{entry['id']}/resend")
                assert resent.status_code == 204
                assert await dispatcher.run_once() == 1
                first, second = receiver.received("/e2e")
                assert first.headers["webhook-id"] == second.headers["webhook-id"]
                assert len((await h.client.get("/tracking/webhooks")).json()) == 2
            finally:
                await dispatcher.client.aclose()
