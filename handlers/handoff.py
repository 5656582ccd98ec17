"""The web process's half of the durable hand-off: record the task, then acknowledge.

A listener's task is one INSERT into the inbox, committed before Slack hears "got it";
then the local worker is nudged through the pipe (a lost nudge costs at most its poll
interval: any replica's worker finds the row). If the database cannot take the row, the
listener says so instead of acknowledging work that nobody would do.
"""

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from handlers.work import encode_args
from models import transaction
from services import inbox
from services.clock import Clock, utcnow

log = logging.getLogger(__name__)

NOT_RECORDED = (":warning: I could not record that just now (my database is not answering), "
                "so nothing will happen. Please try again in a minute.")


class HandoffFailed(Exception):
    """The task could not be recorded: nothing will happen, and the person must hear it."""


class DurableHandoff:
    def __init__(self, sessions: sessionmaker[Session], nudge: Callable[[int], None],
                 clock: Clock = utcnow):
        self.sessions = sessions
        self.nudge = nudge
        self.clock = clock

    def __call__(self, task: str, *args) -> int:
        payload = encode_args(args)
        try:
            with transaction(self.sessions) as session:
                task_id = inbox.add(session, task, payload, self.clock())
        except SQLAlchemyError as exc:
            log.error("could not record %s: %s", task, exc)
            raise HandoffFailed(str(exc)) from exc
        self.nudge(task_id)  # best effort (bot.py): the row is safe, and polled for
        return task_id
