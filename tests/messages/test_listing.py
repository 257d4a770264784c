"""HTTP tests of GET /email-messages: pages, sort, filter, q, and the organization boundary."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import make_message, make_org, update_message

Sessions = async_sessionmaker[AsyncSession]
DAY = datetime(2026, 3, 1, tzinfo=UTC)


async def listed(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/email-messages", params=params)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()]


def invalid_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [f["field"] for f in response.json()["invalidFields"]]


async def make_dated(
    client: httpx.AsyncClient, sessionmaker: Sessions, created: datetime, **overrides: Any
) -> str:
    """A message whose createdTime is `created`, for tests that need a known order."""
    message_id: str = (await make_message(client, **overrides))["id"]
    await update_message(sessionmaker, message_id, created_at=created, updated_at=created)
    return message_id


class TestPagination:
    async def test_pagination_headers_give_total_limit_and_offset(
        self, client: httpx.AsyncClient
    ) -> None:
        for _ in range(3):
            await make_message(client)
        response = await client.get("/email-messages", params={"limit": 2, "offset": 1})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["pagination-total"] == "3"
        assert response.headers["pagination-limit"] == "2"
        assert response.headers["pagination-offset"] == "1"
        assert len(response.json()) == 2

    async def test_limit_defaults_to_100_and_offset_to_0(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages")
        assert response.headers["pagination-limit"] == "100"
        assert response.headers["pagination-offset"] == "0"

    async def test_empty_collection_is_an_empty_array(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages")
        assert response.json() == []
        assert response.headers["pagination-total"] == "0"

    async def test_limit_0_is_an_empty_page_with_the_right_total(
        self, client: httpx.AsyncClient
    ) -> None:
        for _ in range(2):
            await make_message(client)
        response = await client.get("/email-messages", params={"limit": 0})
        assert response.status_code == 200
        assert response.json() == []
        assert response.headers["pagination-total"] == "2"
        assert response.headers["pagination-limit"] == "0"

    async def test_offset_past_the_end_is_an_empty_page_with_the_right_total(
        self, client: httpx.AsyncClient
    ) -> None:
        await make_message(client)
        response = await client.get("/email-messages", params={"offset": 5})
        assert response.json() == []
        assert response.headers["pagination-total"] == "1"

    async def test_limit_1000_is_accepted(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"limit": 1000})
        assert response.status_code == 200
        assert response.headers["pagination-limit"] == "1000"

    async def test_limit_1001_is_422_naming_limit(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"limit": 1001})
        assert invalid_fields(response) == ["limit"]

    async def test_negative_limit_is_422_naming_limit(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"limit": -1})
        assert invalid_fields(response) == ["limit"]

    async def test_negative_offset_is_422_naming_offset(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"offset": -1})
        assert invalid_fields(response) == ["offset"]

    async def test_non_integer_limit_is_422_naming_limit(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"limit": "ten"})
        assert invalid_fields(response) == ["limit"]

    async def test_consecutive_pages_never_repeat_or_skip_a_message_with_tied_times(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        created = [(await make_message(client))["id"] for _ in range(12)]
        # Quick creation already gives ties (times are whole seconds); make them certain:
        # three createdTimes shared by four messages each.
        for index, message_id in enumerate(created):
            at = DAY + timedelta(seconds=index // 4)
            await update_message(sessionmaker, message_id, created_at=at)
        pages = [await listed(client, offset=offset, limit=5) for offset in (0, 5, 10)]
        assert [len(page) for page in pages] == [5, 5, 2]
        joined = [message_id for page in pages for message_id in page]
        assert len(set(joined)) == 12
        assert set(joined) == set(created)
        assert joined == await listed(client)

    async def test_pages_are_stable_under_an_explicit_sort_with_ties(
        self, client: httpx.AsyncClient
    ) -> None:
        for index in range(7):
            await make_message(client, subject=f"group {index % 2}")
        whole = await listed(client, sort="subject")
        paged = [
            m
            for offset in range(0, 7, 3)
            for m in await listed(client, sort="subject", offset=offset, limit=3)
        ]
        assert paged == whole
        assert len(set(paged)) == 7


class TestSort:
    async def test_default_order_is_newest_first(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        old = await make_dated(client, sessionmaker, DAY)
        new = await make_dated(client, sessionmaker, DAY + timedelta(days=2))
        middle = await make_dated(client, sessionmaker, DAY + timedelta(days=1))
        assert await listed(client) == [new, middle, old]

    async def test_ties_in_the_default_order_are_broken_by_id(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        ids = [await make_dated(client, sessionmaker, DAY) for _ in range(4)]
        assert await listed(client) == sorted(ids, reverse=True)

    async def test_sort_by_created_time_is_oldest_first(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        new = await make_dated(client, sessionmaker, DAY + timedelta(days=2))
        old = await make_dated(client, sessionmaker, DAY)
        middle = await make_dated(client, sessionmaker, DAY + timedelta(days=1))
        assert await listed(client, sort="createdTime") == [old, middle, new]

    async def test_sort_descending_by_subject(self, client: httpx.AsyncClient) -> None:
        ids = {
            s: (await make_message(client, subject=s))["id"] for s in ("banana", "cherry", "apple")
        }
        assert await listed(client, sort="-subject") == [ids["cherry"], ids["banana"], ids["apple"]]

    async def test_sort_by_several_keys(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        a_old = await make_dated(client, sessionmaker, DAY, subject="a")
        b_old = await make_dated(client, sessionmaker, DAY, subject="b")
        a_new = await make_dated(client, sessionmaker, DAY + timedelta(days=1), subject="a")
        b_new = await make_dated(client, sessionmaker, DAY + timedelta(days=1), subject="b")
        assert await listed(client, sort="subject,-createdTime") == [a_new, a_old, b_new, b_old]
        assert await listed(client, sort="-createdTime,subject") == [a_new, b_new, a_old, b_old]

    async def test_sort_keys_may_come_as_repeated_parameters(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        a_old = await make_dated(client, sessionmaker, DAY, subject="a")
        a_new = await make_dated(client, sessionmaker, DAY + timedelta(days=1), subject="a")
        b_old = await make_dated(client, sessionmaker, DAY, subject="b")
        response = await client.get(
            "/email-messages", params=[("sort", "subject"), ("sort", "-createdTime")]
        )
        assert [m["id"] for m in response.json()] == [a_new, a_old, b_old]

    async def test_unknown_sort_field_is_422_naming_sort(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"sort": "-createdTime,color"})
        assert invalid_fields(response) == ["sort"]


class TestFilter:
    async def test_filter_by_one_status(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        draft = (await make_message(client))["id"]
        await make_message(client, status="outbox")
        assert await listed(client, filter="status:draft") == [draft]

    async def test_filter_by_several_statuses(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        draft = (await make_message(client))["id"]
        outbox = (await make_message(client, status="outbox"))["id"]
        sent = (await make_message(client))["id"]
        await update_message(sessionmaker, sent, status="sent")
        assert set(await listed(client, filter="status:draft,outbox")) == {draft, outbox}

    async def test_filter_by_negated_status(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        await make_message(client)
        outbox = (await make_message(client, status="outbox"))["id"]
        failed = (await make_message(client))["id"]
        await update_message(sessionmaker, failed, status="failed")
        response = await client.get("/email-messages", params={"filter": "status:!draft"})
        assert {m["id"] for m in response.json()} == {outbox, failed}
        assert response.headers["pagination-total"] == "2"

    async def test_filter_by_closed_created_time_range_is_inclusive(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        days = [await make_dated(client, sessionmaker, DAY + timedelta(days=n)) for n in range(4)]
        found = await listed(
            client, filter="createdTime:2026-03-02T00:00:00Z..2026-03-03T00:00:00Z"
        )
        assert found == [days[2], days[1]]

    async def test_filter_by_created_time_from(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        days = [await make_dated(client, sessionmaker, DAY + timedelta(days=n)) for n in range(3)]
        assert await listed(client, filter="createdTime:2026-03-01T12:00:00Z..") == [
            days[2],
            days[1],
        ]

    async def test_filter_by_created_time_until(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        days = [await make_dated(client, sessionmaker, DAY + timedelta(days=n)) for n in range(3)]
        assert await listed(client, filter="createdTime:..2026-03-02T00:00:00Z") == [
            days[1],
            days[0],
        ]

    async def test_filter_by_created_time_with_an_offset_and_a_raw_plus(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        days = [await make_dated(client, sessionmaker, DAY + timedelta(days=n)) for n in range(3)]
        # 2026-03-02T02:00:00+02:00 is midnight UTC; an unencoded `+` reaches us as a space.
        response = await client.get(
            "/email-messages?filter=createdTime:2026-03-02T02:00:00+02:00.."
        )
        assert [m["id"] for m in response.json()] == [days[2], days[1]]

    async def test_filter_by_created_time_as_a_date(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        days = [await make_dated(client, sessionmaker, DAY + timedelta(days=n)) for n in range(3)]
        assert await listed(client, filter="createdTime:2026-03-02..") == [days[2], days[1]]

    async def test_filter_by_response_code(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        accepted = (await make_message(client))["id"]
        rejected = (await make_message(client))["id"]
        await make_message(client)
        await update_message(sessionmaker, accepted, status="sent", response_code=250)
        await update_message(sessionmaker, rejected, status="failed", response_code=550)
        assert await listed(client, filter="responseCode:250") == [accepted]
        assert await listed(client, filter="responseCode:500..599") == [rejected]

    async def test_filter_on_several_fields_must_all_hold(
        self, client: httpx.AsyncClient, sessionmaker: Sessions
    ) -> None:
        wanted = await make_dated(client, sessionmaker, DAY + timedelta(days=1), status="outbox")
        await make_dated(client, sessionmaker, DAY, status="outbox")
        await make_dated(client, sessionmaker, DAY + timedelta(days=1))
        found = await listed(client, filter="status:outbox;createdTime:2026-03-02T00:00:00Z..")
        assert found == [wanted]

    async def test_filter_by_sender(self, client: httpx.AsyncClient) -> None:
        wanted = (await make_message(client, **{"from": "billing@example.com"}))["id"]
        await make_message(client)
        assert await listed(client, filter="from:billing@example.com") == [wanted]

    async def test_unknown_filter_field_is_422_naming_it(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"filter": "color:red"})
        assert invalid_fields(response) == ["filter.color"]

    async def test_filter_on_a_field_that_is_not_filterable_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/email-messages", params={"filter": "subject:hi"})
        assert invalid_fields(response) == ["filter.subject"]

    async def test_bad_status_value_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"filter": "status:draft,lost"})
        assert invalid_fields(response) == ["filter.status"]

    async def test_bad_datetime_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"filter": "createdTime:yesterday.."})
        assert invalid_fields(response) == ["filter.createdTime"]

    async def test_bad_integer_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"filter": "responseCode:2xx"})
        assert invalid_fields(response) == ["filter.responseCode"]

    async def test_empty_value_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/email-messages", params={"filter": "status:"})
        assert invalid_fields(response) == ["filter.status"]

    async def test_problem_in_a_later_clause_names_that_field(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(
            "/email-messages", params={"filter": "status:draft;responseCode:abc"}
        )
        assert invalid_fields(response) == ["filter.responseCode"]


class TestSearch:
    async def test_q_matches_part_of_the_subject_ignoring_case(
        self, client: httpx.AsyncClient
    ) -> None:
        wanted = (await make_message(client, subject="Your Invoice is ready"))["id"]
        await make_message(client, subject="Welcome")
        assert await listed(client, q="INVOICE") == [wanted]
        assert await listed(client, q="voice is") == [wanted]

    async def test_q_matches_the_sender(self, client: httpx.AsyncClient) -> None:
        wanted = (await make_message(client, **{"from": "Billing@Example.com"}))["id"]
        await make_message(client)
        assert await listed(client, q="billing@") == [wanted]

    @pytest.mark.parametrize("field", ["to", "cc", "bcc"])
    async def test_q_matches_recipients(self, client: httpx.AsyncClient, field: str) -> None:
        wanted = (await make_message(client, **{field: ["zoe.quinn@example.org"]}))["id"]
        await make_message(client)
        assert await listed(client, q="Zoe.Quinn") == [wanted]

    async def test_q_does_not_match_the_body(self, client: httpx.AsyncClient) -> None:
        await make_message(client, text="needle in the text", html="<p>needle</p>")
        assert await listed(client, q="needle") == []

    async def test_q_percent_sign_is_literal(self, client: httpx.AsyncClient) -> None:
        wanted = (await make_message(client, subject="100% off today"))["id"]
        await make_message(client, subject="1000 reasons to buy")
        assert await listed(client, q="00%") == [wanted]

    async def test_q_underscore_is_literal(self, client: httpx.AsyncClient) -> None:
        wanted = (await make_message(client, subject="code a_b"))["id"]
        await make_message(client, subject="code axb")
        assert await listed(client, q="a_b") == [wanted]

    async def test_q_backslash_is_literal(self, client: httpx.AsyncClient) -> None:
        wanted = (await make_message(client, subject=r"path C:\temp"))["id"]
        await make_message(client, subject="path C:temp")
        assert await listed(client, q="c:\\t") == [wanted]

    async def test_q_combines_with_filter_and_total(self, client: httpx.AsyncClient) -> None:
        wanted = (await make_message(client, subject="receipt", status="outbox"))["id"]
        await make_message(client, subject="receipt")
        response = await client.get(
            "/email-messages", params={"q": "receipt", "filter": "status:outbox"}
        )
        assert [m["id"] for m in response.json()] == [wanted]
        assert response.headers["pagination-total"] == "1"


class TestOrganizationBoundary:
    async def test_another_organizations_messages_never_appear(
        self, client: httpx.AsyncClient, api_url: str, sessionmaker: Sessions
    ) -> None:
        own = (await make_message(client, subject="shared words"))["id"]
        other = await make_org(sessionmaker)
        async with httpx.AsyncClient(
            base_url=api_url, headers={"REB-APIKEY": other.api_key}
        ) as theirs:
            foreign = (await make_message(theirs, subject="shared words"))["id"]
            assert await listed(theirs) == [foreign]
        response = await client.get("/email-messages", params={"q": "shared"})
        assert [m["id"] for m in response.json()] == [own]
        assert response.headers["pagination-total"] == "1"
        assert await listed(client, filter=f"id:{foreign}") == []
