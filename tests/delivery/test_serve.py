"""`postroom serve` end to end: API and embedded worker in one process, real SMTP delivery."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.databases import DatabaseFactory
from tests.polling import eventually
from tests.servers.smtp import smtp_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestServe:
    async def test_serve_delivers_through_the_configured_smtp_server_and_stops_on_sigterm(
        self, databases: DatabaseFactory, tmp_path: Path
    ) -> None:
        port = _free_port()
        with smtp_server() as smtp:
            env = {
                **os.environ,
                "POSTROOM_DATABASE_URL": await databases.clone(),
                "POSTROOM_DATA_DIR": str(tmp_path),
                "POSTROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
                "POSTROOM_API_KEY": "serve-test-key",
                "POSTROOM_DELIVERY__POLL_SECONDS": "0.1",
                "POSTROOM_DESTINATIONS__ALLOW": "127.0.0.1",
                "POSTROOM_SENDERS__ALLOWED_DOMAINS": "example.com",
            }
            log = (tmp_path / "serve.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "postroom", "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=log,
            )
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"REB-APIKEY": "serve-test-key"},
                    timeout=10,
                ) as client:

                    async def up() -> bool:
                        try:
                            return (await client.get("/healthz")).status_code == 200
                        except httpx.TransportError:
                            return False

                    await eventually(up, timeout=30, what="postroom serve to answer")
                    created = await client.post(
                        "/email-messages",
                        json={
                            "from": "app@example.com",
                            "to": ["you@example.com"],
                            "subject": "Hello",
                            "text": "Hello from postroom",
                            "html": "<p>Hello from postroom</p>",
                            "status": "outbox",
                        },
                    )
                    assert created.status_code == 201
                    [received] = await smtp.wait_for(1, timeout=30)
                    assert received.message["Subject"] == "Hello"

                    async def sent() -> bool:
                        found = await client.get(created.headers["location"])
                        return bool(found.json()["status"] == "sent")

                    await eventually(sent, timeout=30, what="the message to be recorded sent")
            finally:
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=30)
                log.close()
            # uvicorn re-raises SIGTERM once its graceful shutdown is done, hence -SIGTERM.
            assert code in (0, -signal.SIGTERM)
            output = (tmp_path / "serve.log").read_text()
            assert "delivery worker stopped" in output
            assert "Application shutdown complete" in output
