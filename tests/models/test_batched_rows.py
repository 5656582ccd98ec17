"""batched_rows: the rows add_row adds inside are written at the block's end, one INSERT
per table, in order, after what was added before; an error writes none of them."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from accessbot.models import (
    AuditEvent,
    OutboxMessage,
    OutboxStatus,
    add_row,
    batched_rows,
    transaction,
)

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def owed(queue: str) -> dict:
    return {"kind": "reply", "queue": queue, "target": None, "args": "{}",
            "status": OutboxStatus.PENDING, "created_at": AT, "next_attempt_at": AT,
            "attempts": 0}


def queues(sessions) -> list[str]:
    with transaction(sessions) as session:
        return session.scalars(select(OutboxMessage.queue).order_by(OutboxMessage.id)).all()


@pytest.fixture
def inserts(engine):
    """The INSERT statements sent, each with how many rows it carried."""
    sent: list[tuple[str, int]] = []

    def count(_conn, _cursor, statement, parameters, _context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            rows = len(parameters) if executemany else 1
            sent.append((statement.split()[2].strip('"'), rows))

    event.listen(engine, "before_cursor_execute", count)
    yield sent
    event.remove(engine, "before_cursor_execute", count)


def test_the_rows_are_written_together_at_the_end_in_order(sessions, inserts):
    with transaction(sessions) as session:
        add_row(session, OutboxMessage, **owed("before"))  # the unit of work's, earlier
        with batched_rows(session):
            for n in range(5):
                add_row(session, OutboxMessage, **owed(f"q{n}"))
                add_row(session, AuditEvent, at=AT, actor="U1", action="approved")
            assert session.scalars(select(OutboxMessage.queue)).all() == ["before"]
        written = [rows for table, rows in inserts if table in ("outbox", "audit_events")]
    assert queues(sessions) == ["before", "q0", "q1", "q2", "q3", "q4"]
    assert sorted(written) == [1, 5, 5]  # one row, then one statement per table
    with transaction(sessions) as session:
        assert session.scalar(select(AuditEvent.actor).limit(1)) == "U1"


def test_an_error_inside_writes_nothing_and_ends_the_batch(sessions):
    with pytest.raises(ValueError), transaction(sessions) as session:
        with batched_rows(session):
            add_row(session, OutboxMessage, **owed("lost"))
            raise ValueError("refused")
    with transaction(sessions) as session:
        assert "accessbot.batch" not in session.info
        with batched_rows(session):
            add_row(session, OutboxMessage, **owed("kept"))
    assert queues(sessions) == ["kept"]


def test_a_batch_inside_a_batch_is_written_by_the_outer_one(sessions, inserts):
    with transaction(sessions) as session, batched_rows(session):
        add_row(session, OutboxMessage, **owed("a"))
        with batched_rows(session):
            add_row(session, OutboxMessage, **owed("b"))
        assert not [t for t, _ in inserts if t == "outbox"]
    assert queues(sessions) == ["a", "b"]
    assert [rows for table, rows in inserts if table == "outbox"] == [2]


def test_a_savepoint_begun_inside_a_batch_is_refused(sessions):
    with pytest.raises(RuntimeError, match="savepoint"), transaction(sessions) as session:
        with batched_rows(session), session.begin_nested():
            add_row(session, OutboxMessage, **owed("inside"))
    assert queues(sessions) == []


def test_a_batch_inside_a_savepoint_is_rolled_back_with_it(sessions):
    with transaction(sessions) as session:
        add_row(session, OutboxMessage, **owed("kept"))
        savepoint = session.begin_nested()
        with batched_rows(session):
            add_row(session, OutboxMessage, **owed("undone"))
        savepoint.rollback()
    assert queues(sessions) == ["kept"]
