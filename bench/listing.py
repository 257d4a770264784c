"""Listing at scale: GET /email-messages with a filter and a sort, timed over HTTP at 10k and
again at 1M messages of one organization.

The rows are made by PostgreSQL itself (INSERT … SELECT from generate_series: no Python in the
loop), as a steady sender's history: one message every 7.776 s (about 11,000 a day, so 1M rows
are 90 days), 2% failed, the rest sent, each with the benchmark's ~3 KB bodies. 10k rows are
its first day; then 990k more rows make the same organization 90 days old. Rows written behind
postroom's back are not in its kept counts (Pagination-Total), so each load ends with postroom's
own recount of the organization; then VACUUM ANALYZE, as autovacuum would have done on a live
table.
"""

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import asyncpg

from bench import payload
from bench.infra import HOST, dsn
from bench.loadgen import percentiles_ms, read_response, request_bytes

STEP = timedelta(seconds=7.776)
START = datetime(2026, 1, 1, tzinfo=UTC)

_INSERT = """
INSERT INTO email_messages (
    id, organization_id, status, from_address, to_addresses, cc_addresses, bcc_addresses,
    subject, text, html, metadata, attachments, response_code, response_body,
    initiated_at, sent_at, created_at, updated_at, search_text)
SELECT
    'mail_msg_01BENCH' || lpad(n::text, 19, '0'), $1,
    CASE WHEN n % 50 = 0 THEN 'failed' ELSE 'sent' END,
    $2::text, jsonb_build_array('customer' || n || '@example.org'), '[]', '[]',
    $3::text, $4::text, $5::text, '{"orderId": "A-104427"}', '[]',
    CASE WHEN n % 50 = 0 THEN 550 ELSE 250 END,
    CASE WHEN n % 50 = 0 THEN '5.1.1 <customer' || n || '@example.org>: Recipient address '
         || 'rejected: User unknown in virtual mailbox table'
         ELSE '2.0.0 Ok: queued as ' || upper(to_hex(n * 7919)) END,
    t, CASE WHEN n % 50 = 0 THEN NULL ELSE t + interval '2 seconds' END, t, t,
    lower($3::text || ' ' || $2::text || ' customer' || n || '@example.org')
FROM generate_series($6::bigint, $7::bigint) AS n,
     LATERAL (SELECT $8::timestamptz + n * $9::interval) AS c(t)
"""


@dataclass(frozen=True)
class Query:
    name: str
    params: dict[str, str]


def queries(newest: datetime) -> list[Query]:
    week_ago = (newest - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        # What support does: the failures of the last week, newest first, one page.
        Query(
            "failed in the last 7 days, newest first",
            {
                "filter": f"status:failed;createdTime:{week_ago}..",
                "sort": "-createdTime",
                "limit": "20",
            },
        ),
        # No filter at all: the default list. Pagination-Total then counts every row.
        Query("no filter, newest first", {"sort": "-createdTime", "limit": "20"}),
    ]


@dataclass(frozen=True)
class Timing:
    rows: int
    query: str
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    total: int  # Pagination-Total of the answers

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "query": self.query,
            "requests": self.requests,
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "mean_ms": round(self.mean_ms, 2),
            "pagination_total": self.total,
        }


async def fill(database_url: str, organization_id: str, first: int, last: int) -> float:
    """Rows `first`..`last` of the organization's history; the seconds it took (with VACUUM)."""
    started = time.monotonic()
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute(
            _INSERT,
            organization_id,
            payload.SENDER,
            payload.SUBJECT,
            payload.TEXT,
            payload.HTML,
            first,
            last,
            START,
            STEP,
        )
        await recount(database_url, organization_id)
        await connection.execute("VACUUM ANALYZE email_messages")
    finally:
        await connection.close()
    return time.monotonic() - started


async def recount(database_url: str, organization_id: str) -> None:
    """The organization's kept message counts, rebuilt from its rows (what `postroom messages
    recount` does)."""
    from postroom.db.engine import create_engine, create_sessionmaker
    from postroom.messages import service as messages

    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await messages.recount(session, organization_id)
    finally:
        await engine.dispose()


def newest(rows: int) -> datetime:
    return START + rows * STEP


async def time_query(port: int, api_key: str, query: Query, rows: int, requests: int) -> Timing:
    """`requests` GETs one after another on one keep-alive connection (after 5 unmeasured)."""
    path = "/email-messages?" + urlencode(query.params)
    request = request_bytes("GET", path, {"REB-APIKEY": api_key}, b"")
    reader, writer = await asyncio.open_connection(HOST, port)
    latencies: list[float] = []
    total = -1
    try:
        for n in range(requests + 5):
            started = time.perf_counter()
            writer.write(request)
            status, headers, body = await read_response(reader)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {body[:500]!r}")
            total = int(headers["pagination-total"])
            if n >= 5:
                latencies.append(elapsed)
    finally:
        writer.close()
    cuts = percentiles_ms(latencies)
    return Timing(
        rows,
        query.name,
        requests,
        cuts["p50_ms"],
        cuts["p99_ms"],
        statistics.fmean(latencies) * 1000,
        total,
    )


async def explain(database_url: str, organization_id: str, query: Query) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of the two statements the list endpoint runs for `query` (its page, and
    the count behind Pagination-Total), built by postroom's own repository code."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from postroom.core.listing import ListQuery, parse_filter, parse_sort
    from postroom.messages.repository import list_statement
    from postroom.messages.schemas import LIST_FIELDS

    params = query.params
    parsed = ListQuery(
        limit=int(params.get("limit", "100")),
        sort=parse_sort([params["sort"]] if "sort" in params else [], LIST_FIELDS),
        conditions=parse_filter(params.get("filter"), LIST_FIELDS),
    )
    page, count = list_statement(organization_id, parsed)
    engine = create_async_engine(database_url, pool_size=1)
    plans: dict[str, list[str]] = {}
    try:
        async with engine.connect() as connection:
            for name, statement in (("count", count), ("page", page)):
                compiled = statement.compile(dialect=connection.dialect)
                values = compiled.construct_params()
                args = tuple(values[key] for key in compiled.positiontup or ())
                result = await connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), args
                )
                plans[name] = [str(row[0]) for row in result]
    finally:
        await engine.dispose()
    return plans
