"""The ingest baselines, served the way `postroom api` serves postroom (uvicorn, N worker
processes): a FastAPI endpoint that parses the same JSON with Pydantic and answers 201, and,
when BENCH_BASELINE_DSN names the benchmark's database, one that also INSERTs the row postroom
would store into the same migrated `email_messages` table, with one prepared asyncpg statement
in its own transaction (durable: committed as `synchronous_commit` is configured), before it
answers. The first is what HTTP + Pydantic cost; the second what a durable ingest can reach.

`python -m bench.baseline_app PORT WORKERS` (BENCH_BASELINE_DSN, BENCH_BASELINE_ORG: durable)
"""

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel, Field

from bench.payload import COLUMNS
from postroom.core.ids import new_id

DSN = os.environ.get("BENCH_BASELINE_DSN")
ORGANIZATION = os.environ.get("BENCH_BASELINE_ORG", "")
# Column names of our own, values as parameters.
_PLACEHOLDERS = ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1))
INSERT = (
    f"INSERT INTO email_messages ({', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES ({_PLACEHOLDERS})"
)


class Message(BaseModel):
    from_: str = Field(alias="from")
    to: list[str]
    subject: str
    text: str
    html: str
    status: str = "draft"
    metadata: dict[str, str] | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if DSN is None:
        yield
        return
    # As many connections as postroom's pool may open (pool_size 10 + overflow 10); asyncpg
    # prepares INSERT once per connection and reuses it (its statement cache).
    app.state.pool = await asyncpg.create_pool(DSN, min_size=10, max_size=20)
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/email-messages", status_code=201)
async def create(message: Message) -> Response:
    if DSN is not None:
        now = datetime.now(UTC).replace(microsecond=0)
        queued = now if message.status == "outbox" else None
        await app.state.pool.execute(
            INSERT,
            new_id("mail_msg_"),
            ORGANIZATION,
            message.status,
            message.from_,
            json.dumps(message.to),
            "[]",
            "[]",
            message.subject,
            message.text,
            message.html,
            json.dumps(message.metadata),
            "[]",
            queued,
            now,
            now,
            " ".join([message.subject, message.from_, *message.to]).lower(),
        )
    return Response(status_code=201)


if __name__ == "__main__":
    # The same call as `postroom api` (postroom/cli.py), but for this app.
    uvicorn.run(
        "bench.baseline_app:app",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=int(sys.argv[2]),
        log_config=None,
    )
