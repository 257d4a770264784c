"""Collection plumbing for list endpoints: query parameters in, Pagination-* headers out."""

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Query, Response

from postroom.core.listing import ListField, ListQuery, ListQueryError, parse_filter, parse_sort
from postroom.errors import invalid_field


def collection_query(fields: Mapping[str, ListField]) -> Callable[..., Awaitable[ListQuery]]:
    """A dependency that parses limit/offset/sort/filter/q against a resource's fields."""
    sortable = ", ".join(n for n, f in fields.items() if f.sortable)
    filterable = ", ".join(n for n, f in fields.items() if f.filterable)

    # async, though it awaits nothing: FastAPI would run a plain function in a worker thread.
    async def dependency(
        limit: Annotated[int, Query(ge=0, le=1000, description="Items per page.")] = 100,
        offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
        sort: Annotated[
            list[str] | None,
            Query(description=f"Comma-separated; `-` for descending. Fields: {sortable}."),
        ] = None,
        filter: Annotated[
            str | None,
            Query(
                description="`field:value[,value…]` joined by `;`; `a..b` ranges, `!` negates."
                f" Fields: {filterable}."
            ),
        ] = None,
        q: Annotated[
            str | None, Query(description="Partial, case-insensitive text search.")
        ] = None,
    ) -> ListQuery:
        try:
            return ListQuery(
                limit=limit,
                offset=offset,
                sort=parse_sort(sort or [], fields),
                conditions=parse_filter(filter, fields),
                search=q.strip() or None if q else None,
            )
        except ListQueryError as error:
            raise invalid_field(error.field, error.message) from None

    return dependency


PAGINATION_HEADERS = {
    name: {"description": description, "schema": {"type": "integer"}}
    for name, description in (
        ("Pagination-Total", "Total number of items."),
        ("Pagination-Limit", "Maximum number of items per page."),
        ("Pagination-Offset", "Items skipped before this page."),
    )
}


def set_pagination_headers(response: Response, query: ListQuery, total: int) -> None:
    response.headers["Pagination-Total"] = str(total)
    response.headers["Pagination-Limit"] = str(query.limit)
    response.headers["Pagination-Offset"] = str(query.offset)
