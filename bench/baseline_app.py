"""The ingest baseline: a trivial FastAPI endpoint that parses the same JSON with Pydantic and
answers 201, served the way `postroom api` serves postroom (uvicorn, N worker processes).

`python -m bench.baseline_app PORT WORKERS`
"""

import sys

import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel, Field


class Message(BaseModel):
    from_: str = Field(alias="from")
    to: list[str]
    subject: str
    text: str
    html: str
    status: str = "draft"
    metadata: dict[str, str] | None = None


app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/email-messages", status_code=201)
async def create(message: Message) -> Response:
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
