"""Declarative base: constraint naming, a UTC time type, JSON that is JSONB on PostgreSQL."""

from datetime import UTC, datetime
from functools import cache
from typing import Any, Self, cast

from sqlalchemy import JSON, DateTime, Dialect, MetaData
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite keeps no zone, so it stores naive UTC text, whose
    lexical order is time order, which is what range filters and sorts rely on."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    @classmethod
    def transient(cls, **values: Any) -> Self:
        """A new transient object holding `values`, as `cls(**values)` makes one but without an
        attribute event for each value (for a message, ~4 µs instead of ~80): for objects that
        a Core INSERT writes (messages/repository.insert_messages), not a session's flush."""
        unknown = values.keys() - _attribute_keys(cls)
        if unknown:
            raise TypeError(f"{cls.__name__} has no attribute {sorted(unknown)[0]!r}")
        instance = cast(Self, sa_inspect(cls).class_manager.new_instance())
        vars(instance).update(values)
        return instance

    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        dict[str, str]: JSONType,
        list[str]: JSONType,
        list[dict[str, str]]: JSONType,
    }


@cache
def _attribute_keys(cls: type[Base]) -> frozenset[str]:
    # Reading the mapper's attributes configures the mappers, as a first constructor call does.
    return frozenset(sa_inspect(cls).attrs.keys())
