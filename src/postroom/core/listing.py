"""The query language of every collection: limit, offset, sort, filter and q, parsed into data.

Grammar (DESIGN.md, Collections): `sort=-createdTime,id`; `filter=status:sent,failed;
createdTime:2026-01-01T00:00:00Z..` where `;` separates fields (all must hold), `,` separates
the allowed values of one field, `a..b` is an inclusive range with either end optional, and a
leading `!` excludes a value or range. Each resource declares which fields may be used and how
their values parse; anything else is a `ListQueryError` naming the parameter and field. The
parsed query names columns, not wire fields, so the layers below never see wire names.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

Value = str | int | datetime
# FieldKind.INTEGER columns are SQL INTEGER: a number outside 32 bits could match nothing, and the
# database would answer it with an overflow error instead.
_INTEGER_RANGE = range(-(2**31), 2**31)


class FieldKind(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DATETIME = "datetime"


@dataclass(frozen=True)
class ListField:
    """A field of a resource as a collection query sees it: its wire name maps to `column`."""

    column: str
    kind: FieldKind = FieldKind.STRING
    sortable: bool = True
    filterable: bool = True
    choices: frozenset[str] | None = None


class ListQueryError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Term:
    """One value (`low == high`, `is_range` false) or an inclusive range with open ends as None."""

    low: Value | None
    high: Value | None
    is_range: bool = False


@dataclass(frozen=True)
class Condition:
    field: str
    allowed: tuple[Term, ...] = ()
    excluded: tuple[Term, ...] = ()


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    limit: int = 100
    offset: int = 0
    sort: tuple[SortKey, ...] = ()
    conditions: tuple[Condition, ...] = ()
    search: str | None = None


def values_admitted(query: ListQuery, column: str, among: Iterable[str]) -> frozenset[str] | None:
    """Which of `among` (every value `column` can hold; the column is never null) the query's
    filter admits, when the filter constrains that column alone, by single values (no ranges),
    and there is no q: then the query selects exactly the rows whose `column` is one of them.
    None for any other query, which must be answered by applying its filter to the rows."""
    if query.search:
        return None
    admitted = frozenset(among)
    for condition in query.conditions:
        terms = condition.allowed + condition.excluded
        if condition.field != column or any(term.is_range for term in terms):
            return None
        if condition.allowed:
            admitted &= {str(term.low) for term in condition.allowed}
        admitted -= {str(term.low) for term in condition.excluded}
    return admitted


def parse_sort(raw: Iterable[str], fields: Mapping[str, ListField]) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for part in (p.strip() for chunk in raw for p in chunk.split(",")):
        if not part:
            continue
        name = part.removeprefix("-").removeprefix("+")
        spec = fields.get(name)
        if spec is None or not spec.sortable:
            allowed = ", ".join(sorted(n for n, f in fields.items() if f.sortable))
            raise ListQueryError("sort", f"cannot sort by '{name}'; sortable fields: {allowed}")
        keys.append(SortKey(spec.column, descending=part.startswith("-")))
    return tuple(keys)


def parse_filter(raw: str | None, fields: Mapping[str, ListField]) -> tuple[Condition, ...]:
    if raw is None or not raw.strip():
        return ()
    conditions: list[Condition] = []
    for clause in raw.split(";"):
        if not clause.strip():
            continue
        name, sep, values = clause.partition(":")
        name = name.strip()
        if not sep and "=" in name:
            wanted, _, value = name.partition("=")
            raise ListQueryError(
                f"filter.{wanted.strip()}",
                f"write '{wanted.strip()}:{value.strip()}': a filter names a field and its "
                "values with ':', not '='",
            )
        spec = fields.get(name)
        if spec is None or not spec.filterable:
            allowed = ", ".join(sorted(n for n, f in fields.items() if f.filterable))
            raise ListQueryError(
                f"filter.{name}" if name else "filter",
                f"cannot filter by '{name}'; filterable fields: {allowed}",
            )
        if not sep or not values.strip():
            raise ListQueryError(f"filter.{name}", "expected 'field:value[,value…]'")
        allowed_terms: list[Term] = []
        excluded_terms: list[Term] = []
        for item in values.split(","):
            item = item.strip()
            negated = item.startswith("!")
            term = _parse_term(name, spec, item.removeprefix("!"))
            (excluded_terms if negated else allowed_terms).append(term)
        conditions.append(Condition(spec.column, tuple(allowed_terms), tuple(excluded_terms)))
    return tuple(conditions)


def _parse_term(name: str, spec: ListField, text: str) -> Term:
    if not text:
        raise ListQueryError(f"filter.{name}", "empty value")
    if ".." in text:
        low_text, _, high_text = text.partition("..")
        if not low_text and not high_text:
            raise ListQueryError(f"filter.{name}", "a range needs at least one end")
        low = _parse_value(name, spec, low_text) if low_text else None
        high = _parse_value(name, spec, high_text) if high_text else None
        return Term(low, high, is_range=True)
    value = _parse_value(name, spec, text)
    return Term(value, value)


def _parse_value(name: str, spec: ListField, text: str) -> Value:
    field_name = f"filter.{name}"
    if spec.kind is FieldKind.INTEGER:
        try:
            number = int(text)
        except ValueError:
            raise ListQueryError(field_name, f"'{text}' is not an integer") from None
        if number not in _INTEGER_RANGE:
            raise ListQueryError(field_name, f"'{text}' is out of range")
        return number
    if spec.kind is FieldKind.DATETIME:
        return parse_datetime(field_name, text)
    if spec.choices is not None and text not in spec.choices:
        allowed = ", ".join(sorted(spec.choices))
        raise ListQueryError(field_name, f"'{text}' is not one of: {allowed}")
    return text


def parse_datetime(field_name: str, text: str) -> datetime:
    """ISO 8601; naive times are UTC. A '+' that a query string decoded to ' ' is put back."""
    for candidate in (text, _restore_plus(text)):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        try:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first UTC datetime
            raise ListQueryError(field_name, f"'{text}' is out of range") from None
    raise ListQueryError(field_name, f"'{text}' is not an ISO 8601 date-time")


def _restore_plus(text: str) -> str:
    head, sep, tail = text.rpartition(" ")
    return f"{head}+{tail}" if sep and "T" in head else text
