"""The sender: the one way a message leaves the bot. It delivers outbox rows to Slack.

A dispatcher thread claims the rows that are due and first in their queue, and a small
pool sends them side by side (services/claim_loop.py). Every outcome is committed: sent
(with where Slack put it), retry later (429 with its Retry-After, 5xx, timeouts,
connection errors), or failed for good (channel_not_found, invalid_blocks, ...), which
the admin channel hears of once.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from accessbot.handlers.delivery import Delivery, DeliveryFailed
from accessbot.models import transaction
from accessbot.services import messages, metrics, outbox
from accessbot.services.claim_loop import ClaimLoop
from accessbot.services.clock import Clock, utcnow
from accessbot.services.errors import AccessBotError
from accessbot.services.outbox import Kind, Owed
from accessbot.services.runner import worker_id

log = logging.getLogger(__name__)


GATHER = 0.1  # seconds: with a backlog, claim a few rows at a time (services/claim_loop.py)


class Sender:
    def __init__(self, sessions: sessionmaker[Session], delivery: Delivery,
                 clock: Clock = utcnow, workers: int = 8, owner: str | None = None,
                 hold: Callable[[], None] = lambda: None):
        """hold: called before each claim (in the worker: decisions and revocations go
        first, jobs/process.build)."""
        self.sessions = sessions
        self.hold = hold
        self.delivery = delivery
        self.clock = clock
        self.workers = workers
        self.owner = owner or worker_id()
        self._loop: ClaimLoop[Owed] | None = None
        # a transaction in this process that owed a message wakes the dispatcher at once
        event.listen(sessions, "after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(outbox.OWED, False) and self._loop is not None:
            self._loop.wake()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> "Sender":
        self._loop = ClaimLoop("sender", self._claim, self.send, self.workers,
                               gather=GATHER).start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; messages being sent finish (the rest wait for the next start)."""
        if self._loop is not None:
            self._loop.stop(timeout)

    def _claim(self, slots: int) -> list[Owed]:
        self.hold()
        with transaction(self.sessions) as session:
            return outbox.claim(session, self.owner, self.clock(), slots)

    # -- one message ------------------------------------------------------------------

    def drain(self, timeout: float = 30.0) -> int:
        """Send what is due now, in this thread, until nothing is (run-job, tests)."""
        sent = 0
        deadline = self.clock() + timedelta(seconds=timeout)
        while self.clock() < deadline:
            with transaction(self.sessions) as session:
                claimed = outbox.claim(session, self.owner, self.clock(), self.workers)
            if not claimed:
                return sent
            for owed in claimed:
                sent += self.send(owed)
        return sent

    def send(self, owed: Owed) -> bool:
        """Render, send and record one claimed row; True if Slack took it."""
        now = self.clock()
        try:
            with transaction(self.sessions) as session:
                outbox.supersede_older_updates(session, owed, now)
                call = self.delivery.render(session, owed, now)
        except SQLAlchemyError as exc:  # the database is away: the lease runs out, then again
            log.warning("outbox #%s: could not render (%s); retried later", owed.id, exc)
            return False
        except AccessBotError as exc:  # what it was about is gone: nothing to send
            why = str(exc)
            log.warning("outbox #%s (%s): not sent: %s", owed.id, owed.kind, why)
            self._finish(owed, lambda s: outbox.fail(s, owed, self.owner, now, why))
            return False
        except Exception as exc:  # a bug in a builder: fail this row, not the whole queue
            log.exception("outbox #%s (%s): could not render", owed.id, owed.kind)
            self._failed(owed, DeliveryFailed(f"could not render: {exc!r}", transient=False,
                                              code="render"))
            return False
        if call is None:
            self._finish(owed, lambda s: outbox.mark_sent(s, owed, self.owner, now))
            return False
        try:
            sent = self.delivery.send(call)
        except DeliveryFailed as failure:
            self._failed(owed, failure)
            return False
        self._count("sent", owed, "")

        def record(session: Session) -> None:
            done = self.clock()
            if outbox.mark_sent(session, owed, self.owner, done, sent.channel, sent.ts):
                messages.after_sent(session, owed, sent.channel, sent.ts, done)

        self._finish(owed, record)
        return True

    def _failed(self, owed: Owed, failure: DeliveryFailed) -> None:
        now = self.clock()
        if failure.transient:
            log.warning("outbox #%s (%s to %s): %s; will retry", owed.id, owed.kind,
                        owed.queue, failure.reason, extra={"message_id": owed.id})
            self._count("retried", owed, failure.code)

            def retry(session: Session) -> None:
                if not outbox.retry_later(session, owed, self.owner, now, failure.reason,
                                          failure.retry_after):
                    self._tell_admins(session, owed, failure.reason, now)

            self._finish(owed, retry)
            return
        log.error("outbox #%s (%s to %s): %s; given up", owed.id, owed.kind, owed.queue,
                  failure.reason, extra={"message_id": owed.id})
        self._count("failed", owed, failure.code)

        def fail(session: Session) -> None:
            if outbox.fail(session, owed, self.owner, now, failure.reason):
                self._tell_admins(session, owed, failure.reason, now)

        self._finish(owed, fail)

    def _tell_admins(self, session: Session, owed: Owed, reason: str, now) -> None:
        if owed.kind is Kind.ADMIN_ALERT:  # not about itself, in a loop
            return
        messages.admin_alert(session, f":warning: A message ({owed.kind.value.replace('_', ' ')}"
                             f", #{owed.id}) to {owed.queue} could not be delivered: {reason}. "
                             "It will not be retried.", now)

    def _finish(self, owed: Owed, step) -> None:
        """Commit an outcome; if the database is away, the lease runs out and it is retried."""
        try:
            with transaction(self.sessions) as session:
                step(session)
        except SQLAlchemyError as exc:
            log.warning("outbox #%s: could not record the outcome (%s); it will be retried "
                        "when its lease ends", owed.id, exc)

    @staticmethod
    def _count(outcome: str, owed: Owed, detail: str) -> None:
        metrics.MESSAGES.labels(outcome, owed.kind.value, detail).inc()
