"""The web process's inbox writer (handlers/handoff.py) on a real SQLite file, and on
Postgres: every listener waiting at a moment is one transaction and one nudge of the
worker."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, select

from accessbot.handlers import handoff as handoff_module
from accessbot.handlers.handoff import DurableHandoff, HandoffFailed
from accessbot.handlers.tasks import ReplyTo, Task, decode_args
from accessbot.models import InboxStatus, InboxTask, make_engine, make_session_factory
from tests.factories import APPROVER

WAITING = 20


class FirstBatchHeld(DurableHandoff):
    """The writer's first transaction waits until every listener has queued its rows, as
    in a burst; the rows of each transaction are recorded."""

    def __init__(self, *args):
        super().__init__(*args)
        self.batches: list[int] = []
        self.submitted = 0
        self._counting = threading.Lock()

    def _submit(self, rows):
        pending = super()._submit(rows)  # queued, then counted
        with self._counting:
            self.submitted += 1
        return pending

    def _write(self, batch) -> None:
        # (counted as they are submitted: a writer that woke late may have taken more
        # than one run of MAX_ROWS from the queue, and holds the rest of them meanwhile)
        if not self.batches:
            deadline = time.monotonic() + 5
            while self.submitted < WAITING:
                assert time.monotonic() < deadline, "the other listeners never queued"
                time.sleep(0.001)
        self.batches.append(len(batch))
        super()._write(batch)


def test_listeners_waiting_together_are_one_transaction_and_one_nudge(web_engine, catalog):
    nudges: list[frozenset[str]] = []
    handoff = FirstBatchHeld(web_engine, nudges.append)

    with ThreadPoolExecutor(WAITING) as pool:
        list(pool.map(lambda n: handoff(Task.APPROVE, str(n), APPROVER, ReplyTo(APPROVER)),
                      range(WAITING)))

    with make_session_factory(web_engine)() as session:
        rows = session.scalars(select(InboxTask).order_by(InboxTask.id)).all()
    assert {row.status for row in rows} == {InboxStatus.PENDING}
    assert sorted(decode_args(row.args, catalog)[0] for row in rows) == \
        sorted(str(n) for n in range(WAITING))
    # the first listeners, then every one that queued meanwhile: a transaction each...
    assert len(handoff.batches) <= 2 and sum(handoff.batches) == WAITING
    # ...and a nudge each, with its rows' tasks
    assert nudges == [{Task.APPROVE}] * len(handoff.batches)


def test_a_nudge_that_fails_costs_no_acknowledgement(web_engine, catalog):
    def broken(_tasks: frozenset[str]) -> None:
        raise RuntimeError("the pipe broke")

    handoff = DurableHandoff(web_engine, broken)

    handoff(Task.APPROVE, "1", APPROVER, ReplyTo(APPROVER))
    handoff(Task.APPROVE, "2", APPROVER, ReplyTo(APPROVER))  # the writer lives on

    with make_session_factory(web_engine)() as session:
        rows = session.scalars(select(InboxTask).order_by(InboxTask.id)).all()
    assert [decode_args(row.args, catalog)[0] for row in rows] == ["1", "2"]


def test_a_listener_is_answered_whatever_breaks_in_the_writer(tmp_path):
    """A directory gone: the lock file beside the database cannot be opened. The writer
    thread died of it, and the listener waited for ever."""
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'inbox.db'}", busy_timeout=0,
                         writes_first=True)
    nudges: list[frozenset[str]] = []
    handoff = DurableHandoff(engine, nudges.append)
    outcome: list[BaseException] = []

    def listener() -> None:  # in a thread of its own: a listener left waiting fails here
        try:
            handoff(Task.APPROVE, "1", APPROVER, ReplyTo(APPROVER))
        except BaseException as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=listener, daemon=True)
    waiting.start()
    waiting.join(10)
    engine.dispose()
    assert not waiting.is_alive(), "the listener was never answered"
    [failed] = outcome
    assert isinstance(failed, HandoffFailed) and "No such file or directory" in str(failed)
    assert nudges == []


@pytest.fixture
def writer_engine(migrated_url, sessions):
    """The web process's engine on each database (SQLite, Postgres), whose tables are
    emptied after the test (`sessions`)."""
    engine = make_engine(migrated_url, busy_timeout=0, writes_first=True)
    yield engine
    engine.dispose()


def test_waiting_requests_are_one_insert_statement(writer_engine, catalog, monkeypatch):
    """Each run of waiting requests is one INSERT statement that returns nothing, on both
    databases: SQLite's driver gives up the interpreter lock at each statement of an
    executemany and at each row a RETURNING gives back, and in a burst each costs the
    writer a wait for the event loop's thread. On Postgres the statement runs in
    autocommit (one round trip), in runs of at most MAX_ROWS rows: SQLAlchemy would split
    a longer INSERT in two, and in autocommit the first part would stay if the second
    failed."""
    monkeypatch.setattr(handoff_module, "MAX_ROWS", 8)
    inserts: list[tuple[str | None, bool]] = []  # (isolation level, RETURNING)

    @event.listens_for(writer_engine, "before_cursor_execute")
    def seen(connection, _cursor, statement, *_):
        if statement.lstrip().upper().startswith("INSERT INTO INBOX"):
            inserts.append((connection.get_execution_options().get("isolation_level"),
                            "RETURNING" in statement.upper()))

    handoff = FirstBatchHeld(writer_engine, lambda _tasks: None)
    with ThreadPoolExecutor(WAITING) as pool:
        list(pool.map(lambda n: handoff(Task.APPROVE, str(n), APPROVER, ReplyTo(APPROVER)),
                      range(WAITING)))
    event.remove(writer_engine, "before_cursor_execute", seen)

    assert max(handoff.batches) <= 8 and len(handoff.batches) >= 3
    # a statement per transaction. SQLite: in a transaction begun IMMEDIATE (make_engine),
    # returning nothing; Postgres: in autocommit (a run of one row returns its id, which
    # SQLAlchemy asks for itself: one row, in the same round trip)
    if writer_engine.dialect.name == "postgresql":
        assert [level for level, _ in inserts] == ["AUTOCOMMIT"] * len(handoff.batches)
    else:
        assert inserts == [(None, False)] * len(handoff.batches)
    with make_session_factory(writer_engine)() as session:
        rows = session.scalars(select(InboxTask)).all()
    assert sorted(decode_args(row.args, catalog)[0] for row in rows) == \
        sorted(str(n) for n in range(WAITING))
