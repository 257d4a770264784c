"""Unit tests of core/listing.py: the sort and filter grammar of every collection."""

from datetime import UTC, datetime

import pytest

from postroom.core.listing import (
    Condition,
    FieldKind,
    ListField,
    ListQuery,
    ListQueryError,
    SortKey,
    Term,
    parse_datetime,
    parse_filter,
    parse_sort,
    values_admitted,
)

FIELDS = {
    "status": ListField("status", choices=frozenset({"draft", "outbox", "sent"})),
    "name": ListField("name_column"),
    "code": ListField("code_column", FieldKind.INTEGER),
    "createdTime": ListField("created_at", FieldKind.DATETIME),
    "body": ListField("body", filterable=False),
    "secret": ListField("secret", sortable=False),
}
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
JAN_2 = datetime(2026, 1, 2, tzinfo=UTC)


def error_of(raw: str) -> ListQueryError:
    with pytest.raises(ListQueryError) as caught:
        parse_filter(raw, FIELDS)
    return caught.value


class TestParseSort:
    def test_no_sort_is_empty(self) -> None:
        assert parse_sort([], FIELDS) == ()

    def test_fields_map_to_columns_with_direction(self) -> None:
        assert parse_sort(["-createdTime,name"], FIELDS) == (
            SortKey("created_at", descending=True),
            SortKey("name_column"),
        )

    def test_plus_prefix_is_ascending(self) -> None:
        assert parse_sort(["+name"], FIELDS) == (SortKey("name_column"),)

    def test_repeated_parameters_and_empty_parts_are_joined_in_order(self) -> None:
        assert parse_sort(["name,", " -code ", ""], FIELDS) == (
            SortKey("name_column"),
            SortKey("code_column", descending=True),
        )

    def test_unknown_field_names_sort(self) -> None:
        with pytest.raises(ListQueryError) as caught:
            parse_sort(["name,-color"], FIELDS)
        assert caught.value.field == "sort"
        assert "color" in caught.value.message

    def test_field_that_is_not_sortable_names_sort(self) -> None:
        with pytest.raises(ListQueryError) as caught:
            parse_sort(["secret"], FIELDS)
        assert caught.value.field == "sort"

    def test_error_lists_the_sortable_fields(self) -> None:
        with pytest.raises(ListQueryError) as caught:
            parse_sort(["color"], FIELDS)
        assert "body, code, createdTime, name, status" in caught.value.message


class TestParseFilter:
    @pytest.mark.parametrize("raw", [None, "", "   ", ";", " ; "])
    def test_no_filter_is_empty(self, raw: str | None) -> None:
        assert parse_filter(raw, FIELDS) == ()

    def test_one_value(self) -> None:
        assert parse_filter("status:draft", FIELDS) == (
            Condition("status", allowed=(Term("draft", "draft"),)),
        )

    def test_several_values_are_alternatives(self) -> None:
        (condition,) = parse_filter("status:draft, outbox", FIELDS)
        assert condition.allowed == (Term("draft", "draft"), Term("outbox", "outbox"))
        assert condition.excluded == ()

    def test_leading_bang_excludes_a_value(self) -> None:
        (condition,) = parse_filter("status:!draft", FIELDS)
        assert condition.allowed == ()
        assert condition.excluded == (Term("draft", "draft"),)

    def test_allowed_and_excluded_values_mix(self) -> None:
        (condition,) = parse_filter("code:200..599,!404", FIELDS)
        assert condition.allowed == (Term(200, 599, is_range=True),)
        assert condition.excluded == (Term(404, 404),)

    def test_closed_range(self) -> None:
        (condition,) = parse_filter(
            "createdTime:2026-01-01T00:00:00Z..2026-01-02T00:00:00Z", FIELDS
        )
        assert condition.allowed == (Term(JAN_1, JAN_2, is_range=True),)

    def test_range_open_at_the_top(self) -> None:
        (condition,) = parse_filter("createdTime:2026-01-01T00:00:00Z..", FIELDS)
        assert condition.allowed == (Term(JAN_1, None, is_range=True),)

    def test_range_open_at_the_bottom(self) -> None:
        (condition,) = parse_filter("code:..499", FIELDS)
        assert condition.allowed == (Term(None, 499, is_range=True),)

    def test_negated_range(self) -> None:
        (condition,) = parse_filter("code:!500..599", FIELDS)
        assert condition.excluded == (Term(500, 599, is_range=True),)

    def test_integer_values_are_ints(self) -> None:
        (condition,) = parse_filter("code:-1", FIELDS)
        assert condition.allowed == (Term(-1, -1),)

    def test_semicolon_separates_fields_that_must_all_hold(self) -> None:
        conditions = parse_filter("status:sent;code:250;", FIELDS)
        assert [c.field for c in conditions] == ["status", "code_column"]

    def test_conditions_name_columns_not_wire_fields(self) -> None:
        (condition,) = parse_filter("name:x", FIELDS)
        assert condition.field == "name_column"

    def test_string_values_keep_their_dots_and_colons(self) -> None:
        (condition,) = parse_filter("name:a:b", FIELDS)
        assert condition.allowed == (Term("a:b", "a:b"),)

    def test_unknown_field_is_named(self) -> None:
        error = error_of("status:draft;color:red")
        assert error.field == "filter.color"
        assert "code, createdTime, name, secret, status" in error.message

    def test_field_that_is_not_filterable_is_named(self) -> None:
        assert error_of("body:x").field == "filter.body"

    def test_clause_without_a_field_names_filter(self) -> None:
        assert error_of(":draft").field == "filter"

    def test_clause_without_a_colon_is_named(self) -> None:
        assert error_of("status").field == "filter.status"

    @pytest.mark.parametrize("raw", ["status:", "status:  ", "status:draft,", "status:!"])
    def test_empty_value_is_named(self, raw: str) -> None:
        assert error_of(raw).field == "filter.status"

    def test_range_without_ends_is_named(self) -> None:
        assert error_of("code:..").field == "filter.code"

    def test_value_outside_the_choices_is_named(self) -> None:
        error = error_of("status:draft,lost")
        assert error.field == "filter.status"
        assert "lost" in error.message

    @pytest.mark.parametrize("value", ["2xx", "1.5", "1..x", "x..1"])
    def test_bad_integer_is_named(self, value: str) -> None:
        assert error_of(f"code:{value}").field == "filter.code"

    @pytest.mark.parametrize("value", ["2147483648", "-2147483649", "9" * 30])
    def test_integer_beyond_32_bits_is_named(self, value: str) -> None:
        assert error_of(f"code:{value}").field == "filter.code"

    @pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-01-01T25:00:00Z.."])
    def test_bad_datetime_is_named(self, value: str) -> None:
        assert error_of(f"createdTime:{value}").field == "filter.createdTime"


STATUSES = ("draft", "outbox", "sent")


def admitted(raw: str | None, search: str | None = None) -> frozenset[str] | None:
    query = ListQuery(conditions=parse_filter(raw, FIELDS), search=search)
    return values_admitted(query, "status", STATUSES)


class TestValuesAdmitted:
    def test_no_filter_admits_every_value(self) -> None:
        assert admitted(None) == frozenset(STATUSES)

    def test_listed_values_are_admitted(self) -> None:
        assert admitted("status:sent,draft") == frozenset({"sent", "draft"})

    def test_excluded_values_are_not(self) -> None:
        assert admitted("status:!sent") == frozenset({"draft", "outbox"})

    def test_conditions_on_the_field_all_hold(self) -> None:
        assert admitted("status:sent,draft;status:!draft") == frozenset({"sent"})
        assert admitted("status:sent;status:draft") == frozenset()

    @pytest.mark.parametrize(
        "raw", ["status:draft..outbox", "status:!draft..outbox", "status:sent;name:x", "code:1"]
    )
    def test_a_range_or_another_field_is_none(self, raw: str) -> None:
        assert admitted(raw) is None

    def test_a_search_is_none(self) -> None:
        assert admitted("status:sent", search="invoice") is None
        assert admitted(None, search="") == frozenset(STATUSES)


class TestParseDatetime:
    def test_utc_designator(self) -> None:
        assert parse_datetime("f", "2026-01-01T00:00:00Z") == JAN_1

    def test_offset_is_converted_to_utc(self) -> None:
        assert parse_datetime("f", "2026-01-01T02:00:00+02:00") == JAN_1

    def test_naive_time_is_utc(self) -> None:
        parsed = parse_datetime("f", "2026-01-01T00:00:00")
        assert parsed == JAN_1
        assert parsed.tzinfo is UTC

    def test_a_date_alone_is_midnight_utc(self) -> None:
        assert parse_datetime("f", "2026-01-02") == JAN_2

    def test_plus_decoded_to_a_space_is_restored(self) -> None:
        # `?filter=createdTime:2026-01-01T02:00:00+02:00` arrives with a space for the `+`.
        assert parse_datetime("f", "2026-01-01T02:00:00 02:00") == JAN_1

    def test_plus_restored_in_a_range_end(self) -> None:
        (condition,) = parse_filter(
            "createdTime:2026-01-01T02:00:00 02:00..2026-01-02T05:30:00 05:30", FIELDS
        )
        assert condition.allowed == (Term(JAN_1, JAN_2, is_range=True),)

    def test_negative_offset_is_kept(self) -> None:
        assert parse_datetime("f", "2025-12-31T19:00:00-05:00") == JAN_1

    def test_space_between_date_and_time_is_accepted(self) -> None:
        # RFC 3339 allows a space for the `T`; it must not be taken for a decoded `+`.
        assert parse_datetime("f", "2026-01-01 00:00:00Z") == JAN_1

    def test_time_before_the_first_utc_datetime_is_an_error(self) -> None:
        with pytest.raises(ListQueryError) as caught:
            parse_datetime("filter.createdTime", "0001-01-01T00:00:00+14:00")
        assert caught.value.field == "filter.createdTime"

    def test_error_names_the_field_given(self) -> None:
        with pytest.raises(ListQueryError) as caught:
            parse_datetime("filter.sentTime", "soon")
        assert caught.value.field == "filter.sentTime"
        assert "soon" in caught.value.message
