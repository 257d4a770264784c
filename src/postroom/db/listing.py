"""Applies a parsed collection query (core/listing.py) to a SELECT: filters, q, sort, page."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from postroom.core.listing import Condition, ListQuery, SortKey, Term


def filtered(
    stmt: Select[Any],
    query: ListQuery,
    columns: Mapping[str, ColumnElement[Any]],
    search: ColumnElement[str] | None = None,
) -> Select[Any]:
    """The statement with the query's filter and q applied (no order, no page)."""
    for condition in query.conditions:
        stmt = stmt.where(_condition(columns[condition.field], condition))
    if query.search and search is not None:
        stmt = stmt.where(search.like(f"%{_escape_like(query.search.lower())}%", escape="\\"))
    return stmt


def paged(
    stmt: Select[Any],
    query: ListQuery,
    columns: Mapping[str, ColumnElement[Any]],
    *,
    default_sort: tuple[SortKey, ...],
    tiebreak: ColumnElement[Any],
) -> Select[Any]:
    """Order (with a stable tie-break, so pages never repeat or skip a row) and page."""
    keys = query.sort or default_sort
    order = [_order(columns[k.field], k.descending) for k in keys]
    # The tie-break follows the last key's direction so that one index can serve the whole order.
    order.append(tiebreak.desc() if keys and keys[-1].descending else tiebreak.asc())
    return stmt.order_by(*order).limit(query.limit).offset(query.offset)


def counted(stmt: Select[Any]) -> Select[Any]:
    return stmt.with_only_columns(func.count()).order_by(None)


async def fetch_page(
    session: AsyncSession,
    base: Select[Any],
    query: ListQuery,
    columns: Mapping[str, ColumnElement[Any]],
    *,
    default_sort: tuple[SortKey, ...],
    tiebreak: ColumnElement[Any],
    count: Select[Any] | None = None,
) -> tuple[list[Any], int]:
    """The page of a filtered statement and the total it is a page of (Pagination-Total), which
    `count` answers when given (a statement of one integer: the number of rows `base` selects),
    and count(*) over `base` otherwise. The page is not asked for when it would be empty."""
    total = int((await session.execute(counted(base) if count is None else count)).scalar_one())
    if query.limit == 0 or query.offset >= total:
        return [], total
    page = paged(base, query, columns, default_sort=default_sort, tiebreak=tiebreak)
    return list((await session.scalars(page)).all()), total


def _condition(column: ColumnElement[Any], condition: Condition) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if condition.allowed:
        clauses.append(or_(*(_term(column, t) for t in condition.allowed)))
    # A row with no value is not "equal to x", so it passes an exclusion of x.
    clauses.extend(or_(column.is_(None), not_(_term(column, t))) for t in condition.excluded)
    return and_(*clauses)


def _term(column: ColumnElement[Any], term: Term) -> ColumnElement[bool]:
    if not term.is_range:
        return column == term.low
    bounds = []
    if term.low is not None:
        bounds.append(column >= term.low)
    if term.high is not None:
        bounds.append(column <= term.high)
    return and_(*bounds)


def _order(column: ColumnElement[Any], descending: bool) -> ColumnElement[Any]:
    if not getattr(column, "nullable", True):
        return column.desc() if descending else column.asc()
    # Explicit NULL placement, so SQLite and PostgreSQL page the same way. Only on nullable
    # columns: SQLite would not use an index for an order that names it.
    return column.desc().nulls_first() if descending else column.asc().nulls_last()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
