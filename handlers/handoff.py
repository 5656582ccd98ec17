"""The web process's half of the durable hand-off: record the task, then acknowledge.

A listener's task is an inbox row, committed before Slack hears "got it"; then the
local worker is nudged through the pipe, with the tasks written (a lost nudge costs at
most its poll interval: any replica's worker finds the row). If the database cannot
take the row, the listener says so instead of acknowledging work that nobody would do.

One writer thread commits the rows of every request waiting at that moment in one
transaction (group commit): a burst of twenty acknowledgements is one or two commits,
not twenty, and one nudge, not twenty.

Two ways to wait for the commit, one writer:
- Over HTTP (handlers/web.py), a request's listener runs on the event loop and only
  collects its rows (`collecting`); the answer it made is held until they are committed
  (`settled`, awaited), and replaced by "could not record" if they were not. No thread
  waits, so a burst of two hundred requests does not need two hundred threads queueing
  for the interpreter lock.
- In Socket Mode, Bolt runs listeners on its own threads: a listener's call waits there
  for its row (`__call__` outside `collecting`) and raises HandoffFailed.
"""

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import Engine, insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from accessbot.handlers.tasks import encode_args
from accessbot.models import InboxStatus, InboxTask, writing_first
from accessbot.services.clock import Clock, utcnow

log = logging.getLogger(__name__)

NOT_RECORDED = (":warning: I could not record that just now (my database is not answering), "
                "so nothing will happen. Please try again in a minute.")
GIVE_UP = 2.0  # seconds a request waits for its rows to be written, within Slack's 3
LOCKED_RETRY = 0.002  # SQLite: look for the write lock again this soon (SQLite's own wait
                      # sleeps up to 100 ms at a time, through most moments it is free);
                      # meanwhile no other engine's transaction begins (FirstWriter)
TOO_LATE = "the database did not take the task in time"
# Rows in one transaction: one INSERT statement (SQLAlchemy splits one of more than 1,000)
MAX_ROWS = 500


class HandoffFailed(Exception):
    """The task could not be recorded: nothing will happen, and the person must hear it."""


@dataclass
class Pending:
    """One request's rows, queued for the writer, and their outcome: None once they are
    committed, or HandoffFailed. The outcome runs once the writer has begun their
    transaction; until then `cancel` withdraws them (a request that stopped waiting),
    after it their outcome is awaited whatever the time."""
    rows: list[dict]
    deadline: float
    outcome: Future = field(default_factory=Future)


_collecting: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar(
    "handoff_collecting", default=None)


class DurableHandoff:
    def __init__(self, engine: Engine, nudge: Callable[[frozenset[str]], None],
                 clock: Clock = utcnow):
        """nudge: called after each commit with its rows' tasks."""
        self.engine = engine
        self.nudge = nudge
        self.clock = clock
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        # The rows of a run as one INSERT statement that returns nothing: SQLAlchemy's
        # "insertmanyvalues" for a statement without RETURNING, set on this engine's dialect
        # (without it, SQLite and psycopg get an executemany: a statement per row). SQLite's
        # driver gives up the interpreter lock at every statement and at every row a
        # RETURNING gives back, and while the event loop takes a burst, each time costs this
        # thread up to the 5 ms switch interval to get it back: 80 rows beside a busy
        # thread took 735 ms as INSERT ... RETURNING, and 13 ms as one INSERT.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        self._insert = insert(InboxTask)
        # Postgres: the one INSERT in autocommit is a transaction of its own, all or nothing,
        # in one round trip instead of three (BEGIN, INSERT, COMMIT). While the event loop
        # takes a burst, each round trip ends with a wait for the interpreter lock: with
        # three, all 200 rows of a burst were committed together, after the last request.
        # (SQLite's transactions begin IMMEDIATE, in make_engine: they stay as they are.)
        self._writes = (engine.execution_options(isolation_level="AUTOCOMMIT")
                        if engine.dialect.name == "postgresql" else engine)
        threading.Thread(target=self._write_forever, name="inbox-writer", daemon=True).start()

    def __call__(self, task: str, *args) -> None:
        """What a listener calls. Inside `collecting`: the row joins the request's.
        Elsewhere: the row is written now (or HandoffFailed)."""
        row = {"task": task, "args": encode_args(args), "status": InboxStatus.PENDING,
               "attempts": 0}
        collected = _collecting.get()
        if collected is not None:
            collected.append(row)
            return
        pending = self._submit([row])
        try:
            try:
                pending.outcome.result(GIVE_UP)
            except TimeoutError:
                if pending.outcome.cancel():  # never begun, and now never will be
                    raise HandoffFailed(TOO_LATE) from None
                pending.outcome.result()  # begun: its outcome, whatever the time
        except HandoffFailed as exc:
            log.error("could not record %s: %s", task, exc)
            raise

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[dict]]:
        """The rows that listeners hand over inside the block, for `settled`."""
        rows: list[dict] = []
        token = _collecting.set(rows)
        try:
            yield rows
        finally:
            _collecting.reset(token)

    def _submit(self, rows: list[dict]) -> Pending:
        pending = Pending(rows, time.monotonic() + GIVE_UP)
        self._queue.put(pending)
        return pending

    async def settled(self, rows: list[dict]) -> None:
        """Write the rows `collecting` gathered: done once they are committed, or
        HandoffFailed."""
        if not rows:
            return
        pending = self._submit(rows)
        waiting = asyncio.wrap_future(pending.outcome)
        try:
            done, _ = await asyncio.wait([waiting], timeout=GIVE_UP)
            if not done and pending.outcome.cancel():  # as in __call__
                raise HandoffFailed(TOO_LATE)
            await waiting
        except HandoffFailed as exc:
            log.error("could not record %s: %s", _tasks(pending), exc)
            raise

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get())
            # from here a request's rows are written, or fail: never withdrawn
            batch = [p for p in batch if p.outcome.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                for rows in _at_most(MAX_ROWS, batch):
                    self._write(rows)
            except Exception as exc:  # the lock file, the nudge, a bug: this thread writes
                # every later row, and no request may be left waiting
                log.exception("the inbox writer failed")
                for pending in batch:
                    if not pending.outcome.done():
                        pending.outcome.set_exception(HandoffFailed(repr(exc)))

    def _write(self, batch: list[Pending]) -> None:
        give_up = max(p.deadline for p in batch)
        with writing_first(self.engine):  # SQLite: the worker's next transactions wait
            while True:
                now = self.clock()
                try:
                    with self._writes.begin() as connection:
                        connection.execute(self._insert, [
                            {**row, "created_at": now, "next_attempt_at": now}
                            for p in batch for row in p.rows])
                    break
                except OperationalError as exc:
                    if "database is locked" in str(exc.orig) and time.monotonic() < give_up:
                        time.sleep(LOCKED_RETRY)
                        continue
                    return self._fail(batch, str(exc))
                except SQLAlchemyError as exc:
                    return self._fail(batch, str(exc))
        for pending in batch:
            pending.outcome.set_result(None)
        # best effort (web.py): the rows are safe, and polled for
        self.nudge(frozenset(row["task"] for p in batch for row in p.rows))

    @staticmethod
    def _fail(batch: list[Pending], error: str) -> None:
        for pending in batch:
            pending.outcome.set_exception(HandoffFailed(error))


def _at_most(rows: int, batch: list[Pending]) -> Iterator[list[Pending]]:
    """The batch in runs of whole requests, each of at most `rows` rows (a request with
    more is a run of its own)."""
    run: list[Pending] = []
    size = 0
    for pending in batch:
        if run and size + len(pending.rows) > rows:
            yield run
            run, size = [], 0
        run.append(pending)
        size += len(pending.rows)
    if run:
        yield run


def _tasks(pending: Pending) -> str:
    return ", ".join(str(row["task"]) for row in pending.rows)
