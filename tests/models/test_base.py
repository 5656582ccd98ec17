"""UtcDateTime: aware UTC datetimes in and out, and on SQLite the very text SQLAlchemy's own
DATETIME would store (rows written before and after must compare and sort alike)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite

from accessbot.models.base import UtcDateTime

offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30),
                     timezones=offsets)


@given(aware)
def test_on_sqlite_the_text_is_what_sqlalchemys_datetime_stores_for_its_utc_time(value):
    ours = UtcDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    theirs = DateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))


def test_a_naive_datetime_is_refused_and_none_stays_none():
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
        with pytest.raises(ValueError, match="naive"):
            process(datetime(2026, 12, 7, 8, 0))
        assert process(None) is None


def test_a_sqlite_column_gives_back_the_same_instant_in_utc_and_sorts_by_time():
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UtcDateTime))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    later = datetime(2026, 12, 7, 9, 0, tzinfo=timezone(timedelta(hours=5)))  # 04:00 UTC
    earlier = datetime(2026, 12, 7, 3, 59, 59, 999999, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "at": later}, {"id": 2, "at": earlier}])
        rows = connection.execute(select(table.c.id, table.c.at).order_by(table.c.at)).all()
        found = connection.execute(select(table.c.id).where(table.c.at > earlier)).scalars()
        assert list(found) == [1]
    assert rows == [(2, earlier), (1, later)]
    assert rows[1].at.tzinfo is UTC
