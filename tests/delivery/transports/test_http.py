"""transports/http.py, shared by every provider: an answer's classification, Retry-After in
both its forms, a bounded body, and what a network failure means for the message."""

import socket
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from postroom.delivery.transports.base import (
    OutcomeUnknownError,
    PermanentError,
    TransientError,
)
from postroom.delivery.transports.http import (
    HttpAnswer,
    HttpLimits,
    classify,
    new_client,
    post,
    retry_after_seconds,
)
from tests.servers.esp import Answer, PostmarkServer, serving
from tests.servers.http import serve_in_thread

LIMITS = HttpLimits(connect_timeout=10, timeout=10, connections=1, max_response_bytes=1000)
# For the one test whose timeout must fire: the server answers long after it, so even a loop
# starved on a busy machine sees the timer first.
SHORT = HttpLimits(connect_timeout=1, timeout=0.5, connections=1, max_response_bytes=1000)


def _answer(status: int, **headers: str) -> HttpAnswer:
    return HttpAnswer(status, httpx.Headers(headers), "body")


class TestClassify:
    @pytest.mark.parametrize("status", [200, 201, 202, 204])
    def test_2xx_is_a_receipt(self, status: int) -> None:
        assert classify(_answer(status)).code == status

    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
    def test_429_and_5xx_are_transient(self, status: int) -> None:
        with pytest.raises(TransientError):
            classify(_answer(status))

    @pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 413, 422])
    def test_other_statuses_are_permanent(self, status: int) -> None:
        with pytest.raises(PermanentError):
            classify(_answer(status))


class TestRetryAfter:
    def test_delay_seconds(self) -> None:
        assert retry_after_seconds(httpx.Headers({"Retry-After": "120"})) == 120

    def test_an_http_date_is_measured_from_the_answers_own_date(self) -> None:
        # Both times far in the past: only their difference counts, not the local clock.
        headers = httpx.Headers(
            {
                "Date": formatdate(1_000_000_000, usegmt=True),
                "Retry-After": formatdate(1_000_000_075, usegmt=True),
            }
        )
        assert retry_after_seconds(headers) == 75

    @pytest.mark.parametrize("value", ["", "soon", "-5"])
    def test_nonsense_is_no_hint(self, value: str) -> None:
        assert retry_after_seconds(httpx.Headers({"Retry-After": value})) is None


def _big(_: Request) -> Response:
    return Response(b"x" * 100_000, status_code=500)


@pytest.fixture
def big_body_url() -> Iterator[str]:
    with serve_in_thread(Starlette(routes=[Route("/", _big, methods=["POST"])])) as url:
        yield url


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestPost:
    async def test_a_large_body_is_cut_to_the_limit(self, big_body_url: str) -> None:
        async with new_client(big_body_url, LIMITS) as client:
            answer = await post(client, "/", LIMITS)
        assert answer.status == 500
        assert answer.body == "x" * 1000 + "…"

    async def test_nobody_listening_is_transient(self) -> None:
        async with new_client(f"http://127.0.0.1:{_closed_port()}", LIMITS) as client:
            with pytest.raises(TransientError) as refused:
                await post(client, "/email", LIMITS)
        assert "cannot connect" in refused.value.text
        assert not isinstance(refused.value, OutcomeUnknownError)

    async def test_no_answer_after_the_request_went_out_is_an_unknown_outcome(self) -> None:
        with serving(PostmarkServer("token")) as postmark:
            postmark.script(Answer(200, {"ErrorCode": 0}, delay=3))
            async with new_client(postmark.url, SHORT) as client:
                with pytest.raises(OutcomeUnknownError) as cut:
                    await post(
                        client,
                        "/email",
                        SHORT,
                        json={"From": "a@example.com", "To": "b@example.com", "TextBody": "t"},
                        headers={"X-Postmark-Server-Token": "token"},
                    )
        assert "may have been accepted" in cut.value.text

    async def test_the_message_deadline_bounds_the_whole_request(self) -> None:
        # Each read may take 10 s; the whole request only 0.5 s, against an answer after 3 s.
        limits = HttpLimits(connect_timeout=10, timeout=10, message_timeout=0.5, connections=1)
        with serving(PostmarkServer("token")) as postmark:
            postmark.script(Answer(200, {"ErrorCode": 0}, delay=3))
            async with new_client(postmark.url, limits) as client:
                with pytest.raises(OutcomeUnknownError) as cut:
                    await post(
                        client,
                        "/email",
                        limits,
                        json={"From": "a@example.com", "To": "b@example.com", "TextBody": "t"},
                        headers={"X-Postmark-Server-Token": "token"},
                    )
        assert "message deadline (0.5 s)" in cut.value.text
