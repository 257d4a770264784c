"""The indexes of email_messages serve the collection queries (PostgreSQL, 10,000 messages).

DESIGN.md: "Queries are served by indexes: their cost must not grow with the table the way a
scan does." Each test EXPLAINs the statement the router would run and asserts that the plan
reads one of our indexes and never scans the table; and that Pagination-Total, with no filter or
one on status alone, reads the kept counts and not email_messages at all.
"""

import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import DateTime, Select, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from postroom.app import create_app
from postroom.auth import service as auth
from postroom.core.clock import SystemClock
from postroom.core.ids import new_id
from postroom.core.listing import ListQuery, parse_filter, parse_sort
from postroom.db.engine import create_engine, create_sessionmaker
from postroom.messages import service as messages
from postroom.messages.repository import list_statement
from postroom.messages.schemas import LIST_FIELDS
from postroom.settings import Settings
from tests import databases as test_databases
from tests.servers.http import CLIENT_TLS, serve_in_thread

pytestmark = pytest.mark.skipif(
    test_databases.BACKEND != "postgresql", reason="plans are PostgreSQL's"
)

MESSAGES = 10_000
# Most mail ends sent; a few fail, a few are drafts, a handful are in flight.
STATUS_WEIGHTS = {"sent": 85, "failed": 6, "draft": 6, "outbox": 3}
START = datetime(2026, 1, 1, tzinfo=UTC)
OUR_INDEXES = (
    "ix_email_messages_org_created",
    "ix_email_messages_org_status_created",
    "ix_email_messages_search_trgm",
)
INDEX_READ = re.compile(
    r"(Index Scan|Index Only Scan|Bitmap Index Scan)( Backward)? (using|on) (\w+)"
)


# One statement for the whole corpus: Python draws the values, PostgreSQL builds the rows from
# arrays. (An executemany of 10k ORM rows takes seconds; this takes a fraction of one.)
INSERT_MESSAGES = text(
    """
    INSERT INTO email_messages (
        id, organization_id, status, from_address, to_addresses, cc_addresses, bcc_addresses,
        subject, text, html, metadata, attachments, credential_hash, response_code,
        response_body, initiated_at, sent_at, created_at, updated_at, search_text)
    SELECT m.id, :organization_id, m.status, 'billing@example.com',
        jsonb_build_array(m.recipient), '[]', '[]', m.subject, 'Thank you for your order.',
        '<p>Thank you for your order.</p>', NULL, '[]', NULL,
        CASE m.status WHEN 'sent' THEN 250 WHEN 'failed' THEN 550 END,
        CASE m.status WHEN 'sent' THEN '250 2.0.0 OK' WHEN 'failed' THEN '550 5.1.1 unknown' END,
        CASE WHEN m.status <> 'draft' THEN m.created_at END,
        CASE WHEN m.status IN ('sent', 'failed') THEN m.created_at + interval '2 seconds' END,
        m.created_at, m.created_at,
        lower(m.subject || ' billing@example.com ' || m.recipient)
    FROM unnest(:ids, :statuses, :created, :subjects, :recipients)
        AS m(id, status, created_at, subject, recipient)
    """
).bindparams(
    bindparam("ids", type_=ARRAY(Text())),
    bindparam("statuses", type_=ARRAY(Text())),
    bindparam("created", type_=ARRAY(DateTime(timezone=True))),
    bindparam("subjects", type_=ARRAY(Text())),
    bindparam("recipients", type_=ARRAY(Text())),
)


@dataclass(frozen=True)
class Drawn:
    ids: list[str]
    statuses: list[str]
    created: list[datetime]
    subjects: list[str]
    recipients: list[str]


@dataclass(frozen=True)
class Corpus:
    engine: AsyncEngine
    url: str
    organization: auth.NewOrganization
    drawn: Drawn


def draw_messages(count: int, rng: random.Random) -> Drawn:
    statuses = rng.choices(list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values()), k=count)
    # Spread over ~90 days in 10-second steps: dense enough that some createdTimes tie.
    created = [START + timedelta(seconds=rng.randrange(90 * 24 * 360) * 10) for _ in range(count)]
    return Drawn(
        ids=[new_id("mail_msg_") for _ in range(count)],
        statuses=statuses,
        created=created,
        subjects=[f"Invoice {n} for order {rng.randrange(10**6)}" for n in range(count)],
        recipients=[f"customer{n}@example{n % 50}.com" for n in range(count)],
    )


async def insert_messages(session: AsyncSession, organization_id: str, drawn: Drawn) -> None:
    await session.execute(
        INSERT_MESSAGES,
        {
            "organization_id": organization_id,
            "ids": drawn.ids,
            "statuses": drawn.statuses,
            "created": drawn.created,
            "subjects": drawn.subjects,
            "recipients": drawn.recipients,
        },
    )


@pytest.fixture(scope="module")
async def corpus(databases: test_databases.DatabaseFactory) -> AsyncIterator[Corpus]:
    # A database of its own: 10k rows in the shared one would slow every other test.
    url = await databases.clone()
    engine = create_engine(url, pool_size=2)
    sessions = create_sessionmaker(engine)
    drawn = draw_messages(MESSAGES, random.Random(7))
    async with sessions() as session, session.begin():
        organization = await auth.create_organization(session, "bulk", SystemClock().now())
        await insert_messages(session, organization.organization_id, drawn)
        # A neighbour with messages of its own, so the organization column is not constant.
        neighbour = await auth.create_organization(session, "neighbour", SystemClock().now())
        await insert_messages(
            session, neighbour.organization_id, draw_messages(2_000, random.Random(8))
        )
        # Written behind the service's back, as bench/listing.py does: counted once, after.
        await messages.recount(session)
    # VACUUM as well as ANALYZE, as autovacuum would have done to a table this size: it moves
    # the trigram index's pending list (fast-update GIN) into the index proper.
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM ANALYZE email_messages")
    yield Corpus(
        engine=engine,
        url=url,
        organization=organization,
        drawn=drawn,
    )
    await engine.dispose()


@pytest.fixture(scope="module")
def corpus_api(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("indexes-data")
    with serve_in_thread(
        create_app(Settings(database_url=corpus.url, data_dir=data_dir, log_json=False))
    ) as url:
        yield url


def router_query(
    *, filter: str | None = None, sort: str | None = None, q: str | None = None, limit: int = 100
) -> ListQuery:
    """The ListQuery the router builds from these query parameters."""
    return ListQuery(
        limit=limit,
        sort=parse_sort([sort] if sort else [], LIST_FIELDS),
        conditions=parse_filter(filter, LIST_FIELDS),
        search=q,
    )


async def explain(engine: AsyncEngine, statement: Select[Any]) -> str:
    sql = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in rows)


def assert_served_by_an_index(plan: str, *, allowed: tuple[str, ...] = OUR_INDEXES) -> None:
    assert "Seq Scan on email_messages" not in plan, plan
    used = {match[3] for match in INDEX_READ.findall(plan)}
    assert used & set(allowed), plan


class TestListIndexes:
    async def test_default_order_newest_first_is_served_by_an_index(self, corpus: Corpus) -> None:
        page, _ = list_statement(corpus.organization.organization_id, router_query())
        assert_served_by_an_index(await explain(corpus.engine, page))

    async def test_status_filter_sorted_newest_first_is_served_by_an_index(
        self, corpus: Corpus
    ) -> None:
        query = router_query(filter="status:failed", sort="-createdTime")
        page, count = list_statement(corpus.organization.organization_id, query)
        assert_served_by_an_index(
            await explain(corpus.engine, page), allowed=("ix_email_messages_org_status_created",)
        )
        assert_reads_only_kept_counts(await explain(corpus.engine, count))

    async def test_status_and_time_range_filter_is_served_by_an_index(self, corpus: Corpus) -> None:
        query = router_query(
            filter="status:outbox,failed;createdTime:2026-02-01T00:00:00Z..2026-02-08T00:00:00Z",
            sort="-createdTime",
        )
        page, _ = list_statement(corpus.organization.organization_id, query)
        assert_served_by_an_index(await explain(corpus.engine, page))

    async def test_count_of_status_and_time_range_is_served_by_an_index(
        self, corpus: Corpus
    ) -> None:
        query = router_query(filter="status:failed;createdTime:2026-02-01T00:00:00Z..")
        _, count = list_statement(corpus.organization.organization_id, query)
        assert_served_by_an_index(
            await explain(corpus.engine, count), allowed=("ix_email_messages_org_status_created",)
        )

    async def test_q_is_served_by_the_trigram_index(self, corpus: Corpus) -> None:
        query = router_query(q="customer4242@")
        page, count = list_statement(corpus.organization.organization_id, query)
        trigram = ("ix_email_messages_search_trgm",)
        assert_served_by_an_index(await explain(corpus.engine, page), allowed=trigram)
        assert_served_by_an_index(await explain(corpus.engine, count), allowed=trigram)


def assert_reads_only_kept_counts(plan: str) -> None:
    assert "email_messages" not in plan, plan
    assert_served_by_an_index(plan, allowed=("pk_email_message_counts",))


class TestKeptCounts:
    @pytest.mark.parametrize(
        "filter", [None, "status:failed", "status:sent,failed", "status:!draft;status:!sent"]
    )
    async def test_count_with_no_filter_or_status_alone_reads_only_kept_counts(
        self, corpus: Corpus, filter: str | None
    ) -> None:
        query = router_query(filter=filter, sort="-createdTime")
        _, count = list_statement(corpus.organization.organization_id, query)
        assert_reads_only_kept_counts(await explain(corpus.engine, count))

    @pytest.mark.parametrize(
        "filter", ["status:draft..outbox", "id:mail_msg_x", "status:sent;responseCode:250"]
    )
    async def test_count_with_any_other_filter_reads_the_messages(
        self, corpus: Corpus, filter: str
    ) -> None:
        _, count = list_statement(corpus.organization.organization_id, router_query(filter=filter))
        assert "email_message_counts" not in await explain(corpus.engine, count)

    async def test_count_with_q_reads_the_messages(self, corpus: Corpus) -> None:
        query = router_query(filter="status:sent", q="customer42")
        _, count = list_statement(corpus.organization.organization_id, query)
        assert "email_message_counts" not in await explain(corpus.engine, count)


class TestListOverHttp:
    @pytest.fixture
    async def client(self, corpus: Corpus, corpus_api: str) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(
            base_url=corpus_api,
            headers={"REB-APIKEY": corpus.organization.api_key},
            verify=CLIENT_TLS,
        ) as client:
            yield client

    @staticmethod
    def newest_first(corpus: Corpus, status: str | None = None) -> list[str]:
        drawn = corpus.drawn
        rows = zip(drawn.created, drawn.ids, drawn.statuses, strict=True)
        chosen = [(c, i) for c, i, s in rows if status is None or s == status]
        return [i for _, i in sorted(chosen, reverse=True)]

    async def test_default_listing_returns_the_newest_page_and_the_total(
        self, corpus: Corpus, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/email-messages")
        assert response.status_code == 200
        assert response.headers["pagination-total"] == str(MESSAGES)
        assert [m["id"] for m in response.json()] == self.newest_first(corpus)[:100]

    async def test_status_filter_returns_the_right_page_and_the_total(
        self, corpus: Corpus, client: httpx.AsyncClient
    ) -> None:
        failed = self.newest_first(corpus, "failed")
        response = await client.get(
            "/email-messages",
            params={"filter": "status:failed", "sort": "-createdTime", "limit": 20, "offset": 20},
        )
        assert response.status_code == 200
        assert response.headers["pagination-total"] == str(len(failed))
        assert [m["id"] for m in response.json()] == failed[20:40]

    async def test_status_values_total_is_exact(
        self, corpus: Corpus, client: httpx.AsyncClient
    ) -> None:
        for filter, statuses in [
            ("status:sent,failed", {"sent", "failed"}),
            ("status:!sent", {"failed", "draft", "outbox"}),
        ]:
            response = await client.get("/email-messages", params={"filter": filter, "limit": 1})
            expected = sum(1 for s in corpus.drawn.statuses if s in statuses)
            assert response.headers["pagination-total"] == str(expected), filter

    async def test_q_finds_the_one_matching_message(
        self, corpus: Corpus, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/email-messages", params={"q": "Customer4242@"})
        assert response.headers["pagination-total"] == "1"
        assert [m["id"] for m in response.json()] == [corpus.drawn.ids[4242]]
