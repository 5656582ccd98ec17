"""The web process's half of the durable hand-off: record the task, then acknowledge.

A listener's task is an inbox row, committed before Slack hears "got it"; then the
local worker is nudged through the pipe (a lost nudge costs at most its poll interval:
any replica's worker finds the row). If the database cannot take the row, the listener
says so instead of acknowledging work that nobody would do.

One writer thread commits the rows of every listener waiting at that moment in one
transaction (group commit): a burst of twenty acknowledgements is one or two commits,
not twenty threads contending for the interpreter lock and, on SQLite, the write lock;
and one nudge, not twenty.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from accessbot.handlers.tasks import encode_args
from accessbot.models import InboxStatus, InboxTask, writing_first
from accessbot.services.clock import Clock, utcnow

log = logging.getLogger(__name__)

NOT_RECORDED = (":warning: I could not record that just now (my database is not answering), "
                "so nothing will happen. Please try again in a minute.")
GIVE_UP = 2.0  # seconds a listener waits for its row to be written, within Slack's 3
LOCKED_RETRY = 0.002  # SQLite: look for the write lock again this soon (SQLite's own wait
                      # sleeps up to 100 ms at a time, through most moments it is free);
                      # meanwhile no other engine's transaction begins (FirstWriter)


class HandoffFailed(Exception):
    """The task could not be recorded: nothing will happen, and the person must hear it."""


@dataclass
class _Waiting:
    row: dict
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False  # in a transaction: its outcome is awaited, whatever the time
    task_id: int | None = None
    error: str | None = None


class DurableHandoff:
    def __init__(self, engine: Engine, nudge: Callable[[int], None], clock: Clock = utcnow):
        self.engine = engine
        self.nudge = nudge
        self.clock = clock
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._insert = insert(InboxTask).returning(InboxTask.id, sort_by_parameter_order=True)
        self._lock = threading.Lock()  # guards `started` against the deadline
        threading.Thread(target=self._write_forever, name="inbox-writer", daemon=True).start()

    def __call__(self, task: str, *args) -> int:
        waiting = _Waiting({"task": task, "args": encode_args(args),
                            "status": InboxStatus.PENDING, "attempts": 0},
                           time.monotonic() + GIVE_UP)
        self._queue.put(waiting)
        if not waiting.done.wait(GIVE_UP):
            with self._lock:
                if not waiting.started:  # never written, and now never will be
                    waiting.error = "the database did not take the task in time"
                    waiting.done.set()
            waiting.done.wait()
        if waiting.error is not None:
            log.error("could not record %s: %s", task, waiting.error)
            raise HandoffFailed(waiting.error)
        return waiting.task_id

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get())
            with self._lock:
                batch = [w for w in batch if not w.done.is_set()]
                for waiting in batch:
                    waiting.started = True
            if not batch:
                continue
            try:
                self._write(batch)
            except Exception as exc:  # the lock file, the nudge, a bug: this thread writes
                # every later row, and no listener may be left waiting
                log.exception("the inbox writer failed")
                self._fail([w for w in batch if not w.done.is_set()], repr(exc))

    def _write(self, batch: list[_Waiting]) -> None:
        give_up = max(w.deadline for w in batch)
        with writing_first(self.engine):  # SQLite: the worker's next transactions wait
            while True:
                now = self.clock()
                try:
                    with self.engine.begin() as connection:
                        ids = connection.execute(self._insert, [
                            {**w.row, "created_at": now, "next_attempt_at": now}
                            for w in batch]).scalars().all()
                    break
                except OperationalError as exc:
                    if "database is locked" in str(exc.orig) and time.monotonic() < give_up:
                        time.sleep(LOCKED_RETRY)
                        continue
                    return self._fail(batch, str(exc))
                except SQLAlchemyError as exc:
                    return self._fail(batch, str(exc))
        for waiting, task_id in zip(batch, ids, strict=True):
            waiting.task_id = task_id
            waiting.done.set()
        self.nudge(ids[-1])  # best effort (web.py): the rows are safe, and polled for

    @staticmethod
    def _fail(batch: list[_Waiting], error: str) -> None:
        for waiting in batch:
            waiting.error = error
            waiting.done.set()
