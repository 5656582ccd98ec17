"""What happens after a listener's acknowledgement, in the worker process.

A listener records a Task by name in the inbox (services/inbox.py), with arguments that
encode as JSON (ids, drafts, where to reply), never Bolt's own objects. Here each task
runs its use case in one transaction that also marks the task done, so a task started
again after a crash never decides twice; AWS calls run after that commit, on their own
bounded pool, and never hold up a decision. Every task ends with an answer to the
person who acted: the result, or a plain "that did not work, try again".
"""

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from accessbot.handlers import blocks, break_glass_blocks
from accessbot.handlers.errors import UNEXPECTED, user_message
from accessbot.handlers.tasks import ReplyTo, Task, decode_args
from accessbot.models import Grant, transaction
from accessbot.services import (
    break_glass,
    extensions,
    findings,
    inbox,
    lifecycle,
    messages,
    metrics,
    overview,
)
from accessbot.services import grants as grant_ops
from accessbot.services import requests as request_ops
from accessbot.services.catalog import Catalog
from accessbot.services.clock import Clock
from accessbot.services.commands import Draft, ExtensionDraft, parse_id
from accessbot.services.errors import AccessBotError, NotFound
from accessbot.services.hygiene_runner import HygieneRunner
from accessbot.services.inbox import Claimed
from accessbot.services.people import UserGroups
from accessbot.services.review_runner import ReviewRunner
from accessbot.services.runner import AccessRunner

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class WorkDeps:
    sessions: sessionmaker[Session]
    catalog: Catalog
    runner: AccessRunner
    hygiene: HygieneRunner
    client: WebClient
    clock: Clock
    later: Callable[..., object]  # runs AWS work on the worker's bounded AWS pool
    owner: str  # this worker's name on inbox leases
    review: ReviewRunner | None = None  # the access review (None: not wired)
    groups: UserGroups | None = None  # Slack user groups among approvers and admins


APPROVE_BATCH = 100  # Approve clicks waiting together are decided in one transaction

TRY_AGAIN = ":warning: That did not work on our side, and nothing was changed. Please try again."


def _took(task: Claimed, ended: datetime) -> None:
    metrics.TASK_SECONDS.labels(task.task).observe(
        max(0.0, (ended - task.created_at).total_seconds()))


class _AlreadyDone(Exception):
    """Another worker finished this task while we ran it: roll ours back."""


class DecisionsFirst:
    """In the worker, Approve clicks go before the work that follows decisions.

    One batch of clicks is decided at a time (clicks that arrive meanwhile wait for the
    next: a burst is a few transactions, not one per thread, and on SQLite not a queue for
    the write lock). While a batch is claimed or running, the AWS pool and the sender
    `hold` new work, HOLD seconds at most: the grants and messages of the first batch,
    dozens of threads in one interpreter, held the next batch's decisions for 0.2-1 s
    (`make bench`, phase 4).
    """

    HOLD = 0.5  # seconds: AWS work and messages wait no longer than this for decisions

    def __init__(self, hold: float = HOLD):
        self._hold = hold
        self._lock = threading.Lock()
        self._deciding = False
        self._idle = threading.Event()
        self._idle.set()

    def may_decide(self) -> bool:
        """No batch of clicks is being decided (the caller claims the next)."""
        return not self._deciding

    def claimed(self, clicks: bool) -> None:
        """After each claim: whether it took clicks. A claim that found none while no batch
        runs opens the way again; a batch's end alone does not (more may be waiting)."""
        with self._lock:
            if clicks:
                self._deciding = True
                self._idle.clear()
            elif not self._deciding:
                self._idle.set()

    def decided(self) -> None:
        with self._lock:
            self._deciding = False

    def hold(self) -> None:
        """The AWS pool's and the sender's: wait while clicks are being decided."""
        self._idle.wait(self._hold)


class Work:
    def __init__(self, deps: WorkDeps, decisions: DecisionsFirst | None = None):
        self.deps = deps
        self.decisions = decisions or DecisionsFirst()
        self._local = threading.local()  # the task this thread is running

    def claim(self, slots: int) -> list[list[Claimed]]:
        """Lease work for `slots` free threads, one list each: every waiting Approve click
        together, unless a batch of them is being decided (a burst of clicks is decided in
        a few transactions, so decisions never queue behind each other), and single tasks
        for the other threads."""
        looked = self.decisions.may_decide()
        with transaction(self.deps.sessions) as session:
            now = self.deps.clock()
            clicks = inbox.claim(session, self.deps.owner, now, APPROVE_BATCH,
                                 Task.APPROVE) if looked else []
            rest = slots - 1 if clicks else slots
            # not a click that came in since the line above: it waits for the next batch
            # rather than taking a thread (and a transaction) of its own
            single = inbox.claim(session, self.deps.owner, now, rest,
                                 other_than=Task.APPROVE) if rest else []
        if looked:  # (one that did not look for clicks cannot say that none wait)
            self.decisions.claimed(bool(clicks))
        return ([clicks] if clicks else []) + [[task] for task in single]

    def worth_a_claim(self, tasks: Collection[str]) -> bool:
        """Whether new inbox rows of these tasks are worth a claim now. Not when all of them
        are Approve clicks and a batch is being decided: a claim now could take nothing
        (the clicks wait for the next batch), and the batch's end claims them. In a burst
        of clicks on Postgres, each of the web process's small commits woke the claim loop
        for a transaction that found nothing, a few dozen of them beside the decisions."""
        return not (set(tasks) <= {Task.APPROVE.value} and not self.decisions.may_decide())

    def run_all(self, claimed: list[Claimed]) -> None:
        """Run what `claim` leased to one thread."""
        clicks = self.unblocks(claimed)  # (single tasks are never clicks)
        try:
            if len(claimed) == 1:
                self.run(claimed[0])
            else:
                self._approve_all(claimed)
        finally:
            if clicks:
                self.decisions.decided()

    @staticmethod
    def unblocks(claimed: list[Claimed]) -> bool:
        """For the claim loop: the end of a batch of clicks lets the clicks that came while
        it was decided be claimed; a single task's end makes nothing claimable."""
        return claimed[0].task == Task.APPROVE.value

    def _approve_all(self, claimed: list[Claimed]) -> None:
        """Approve clicks decided in one transaction. If the batch as a whole cannot be (a
        grant inserted meanwhile by another process, a task done elsewhere, the database),
        each is run on its own, with its own answers and retries."""
        clicks: list[tuple[Claimed, request_ops.Approval, ReplyTo]] = []
        for task in claimed:
            try:
                value, approver_id, reply = decode_args(task.args, self.deps.catalog)
                clicks.append((task, request_ops.Approval(parse_id(value), approver_id,
                                                          task.created_at), reply))
            except (ValueError, AccessBotError):  # its own answer, as a single task
                self.run(task)
        try:
            with transaction(self.deps.sessions) as session:
                results = request_ops.approve_many(session, self.deps.catalog,
                                                   [approval for _, approval, _ in clicks],
                                                   self.deps.groups)
                now = self.deps.clock()
                for (_, _, reply), result in zip(clicks, results, strict=True):
                    if isinstance(result, AccessBotError):
                        messages.reply(session, reply.user_id, reply.response_url,
                                       user_message(result), now)
                if not inbox.finish_all(session, [task.id for task, _, _ in clicks],
                                        self.deps.owner, now):
                    raise _AlreadyDone()
        except Exception as exc:  # each task then meets it on its own, and is answered
            log.warning("%d Approve clicks could not be decided together (%r); one by one",
                        len(clicks), exc)
            for task, _, _ in clicks:
                self.run(task)
            return
        metrics.TASKS.labels(Task.APPROVE.value, "done").inc(len(clicks))
        committed = self.deps.clock()
        for task, _, _ in clicks:
            _took(task, committed)
        granted = [(approval.request_id, result) for (_, approval, _), result
                   in zip(clicks, results, strict=True) if isinstance(result, Grant)]
        if granted:  # one hand-over: the AWS pool starts its threads, not this batch's
            self.deps.later(self._carry_out_all, granted)

    def run(self, claimed: Claimed) -> None:
        """Run one claimed inbox task to its end: done, retried later, or failed with an
        answer to the person. Called on the worker's task pool."""
        self._local.task, self._local.finished = claimed, False
        try:
            method = getattr(self, Task(claimed.task).value)
            args = decode_args(claimed.args, self.deps.catalog)
        except (ValueError, NotFound) as exc:  # a row no code of ours could have written
            why = str(exc)
            log.error("inbox #%s: cannot run %r: %s", claimed.id, claimed.task, why)
            self._end(lambda session: inbox.fail(session, claimed.id, self.deps.owner,
                                                 self.deps.clock(), why))
            return
        reply = next((a for a in args if isinstance(a, ReplyTo)), None)
        try:
            method(*args)
        except SQLAlchemyError as exc:  # the database went away: try again shortly
            metrics.TASKS.labels(claimed.task, "retried").inc()
            why = str(exc)
            log.warning("inbox #%s (%s): %s; will retry", claimed.id, claimed.task, why)
            if not self._end(lambda session: inbox.retry_later(
                    session, claimed, self.deps.owner, self.deps.clock(), why)):
                self._answer(reply, TRY_AGAIN)
            return
        except Exception as exc:  # a bug: this task fails, the person hears, the rest goes on
            metrics.TASKS.labels(claimed.task, "failed").inc()
            why = repr(exc)
            log.exception("inbox #%s (%s) failed", claimed.id, claimed.task,
                          extra={"task_id": claimed.id})
            self._end(lambda session: inbox.fail(session, claimed.id, self.deps.owner,
                                                 self.deps.clock(), why))
            self._answer(reply, UNEXPECTED)
            return
        finally:
            self._local.task = None
        metrics.TASKS.labels(claimed.task, "done").inc()
        if not self._local.finished:  # e.g. a form opened: no use case marked it done
            self._end(lambda session: inbox.finish(session, claimed.id, self.deps.owner,
                                                   self.deps.clock()))
        _took(claimed, self.deps.clock())

    def _now(self) -> datetime:
        """When the person acted (the inbox row's time), else now: a decision's clock
        starts at the click, however long the task waited."""
        task = getattr(self._local, "task", None)
        return task.created_at if task is not None else self.deps.clock()

    def _finish_task(self, session: Session) -> None:
        task = getattr(self._local, "task", None)
        if task is None:
            return
        if not inbox.finish(session, task.id, self.deps.owner, self.deps.clock()):
            raise _AlreadyDone()
        self._local.finished = True  # (if the transaction then fails, the lease runs out)

    def _end(self, step: Callable[[Session], bool]) -> bool:
        try:
            with transaction(self.deps.sessions) as session:
                return step(session)
        except SQLAlchemyError as exc:  # the lease runs out and another try comes
            log.warning("inbox: could not record a task's end: %s", exc)
            return True

    def _answer(self, reply: "ReplyTo | None", text: str) -> None:
        if reply is None:
            return
        try:
            with transaction(self.deps.sessions) as session:
                messages.reply(session, reply.user_id, reply.response_url, text,
                               self.deps.clock())
        except SQLAlchemyError as exc:
            log.error("could not tell %s that their action failed: %s", reply.user_id, exc)

    def open_view(self, trigger_id: str, view: dict, reply: ReplyTo | None = None) -> None:
        """Open a modal now: a trigger_id lasts 3 seconds, so this is no outbox message."""
        try:
            self.deps.client.views_open(trigger_id=trigger_id, view=view)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("views.open failed: %s", exc)
            if reply is not None:
                self._reply(reply, ":warning: Slack did not let me open the form just now. "
                                   "Please try again.")

    # -- requests and decisions ------------------------------------------------------

    def submit_request(self, user_id: str, draft: Draft, reply: ReplyTo) -> None:
        request = self._run(reply, lambda session: request_ops.create_request(
            session, self.deps.catalog, user_id, draft, self._now()))
        if request is not None:
            self.deps.later(self.deps.runner.announce, request.id)

    def approve(self, value: str | None, approver_id: str, reply: ReplyTo,
                seconds: float | None = None) -> None:
        def approve(session: Session) -> tuple[int, Grant]:
            request_id = parse_id(value)
            return request_id, request_ops.approve(
                session, self.deps.catalog, request_id, approver_id, self._now(),
                self.deps.groups, None if seconds is None else timedelta(seconds=seconds))

        decided = self._run(reply, approve)
        if decided is not None and isinstance(decided[1], Grant):  # not one of N-of-M
            self._carry_out(*decided)

    def ask_approve_duration(self, value: str | None, approver_id: str, trigger_id: str,
                             reply: ReplyTo) -> None:
        """"Approve for less…": the modal asking how long, for an approver of a pending
        request."""
        request = self._run(reply, lambda session: request_ops.check_can_decide(
            session, self.deps.catalog, parse_id(value), approver_id, self.deps.groups))
        if request is not None:
            self.open_view(trigger_id, blocks.approve_less_form(request), reply)

    def approve_less(self, value: str | None, approver_id: str, seconds: float,
                     reply: ReplyTo) -> None:
        self.approve(value, approver_id, reply, seconds)

    def _carry_out_all(self, granted: list[tuple[int, Grant]]) -> None:
        """A batch's grants, each on the AWS pool (where this runs): a pool that has yet to
        grow starts a thread for each, 0.3-0.5 ms apiece, which the next batch of clicks
        waited for when the batch's own thread handed them over (17 ms for 34 grants in
        `make bench`, phase 4). A pool that is shutting down (the worker drains) takes no
        more: the rest are carried out here, in turn."""
        for request_id, grant in granted:
            try:
                self._carry_out(request_id, grant)
            except RuntimeError:  # "cannot schedule new futures after shutdown"
                self._job_for(request_id, grant)(grant.id)

    def _carry_out(self, request_id: int, grant: Grant) -> None:
        """After the decision's commit, on the AWS pool; if we die first, the sweep does it."""
        self.deps.later(self._job_for(request_id, grant), grant.id)

    def _job_for(self, request_id: int, grant: Grant) -> Callable[[int], object]:
        if grant.request_id == request_id:
            return self.deps.runner.apply_grant
        # an extension: the grant came from an earlier request and runs longer now
        return self.deps.runner.extend_grant

    def ask_deny_reason(self, value: str | None, approver_id: str, trigger_id: str,
                        reply: ReplyTo) -> None:
        request = self._run(reply, lambda session: request_ops.check_can_decide(
            session, self.deps.catalog, parse_id(value), approver_id, self.deps.groups))
        if request is not None:
            self.open_view(trigger_id, blocks.deny_form(request), reply)

    def deny(self, value: str | None, approver_id: str, reason: str | None,
             reply: ReplyTo) -> None:
        self._run(reply, lambda session: request_ops.deny(
            session, self.deps.catalog, parse_id(value), approver_id, reason, self._now(),
            self.deps.groups))

    # -- break-glass -------------------------------------------------------------------

    def submit_break_glass(self, user_id: str, packed: str, reply: ReplyTo) -> None:
        """Confirmed: recorded (validated again, as typed) and announced, which grants it."""
        def submit(session: Session):
            glass = break_glass.unpack(self.deps.catalog, user_id, packed)
            request = break_glass.create(session, self.deps.catalog, user_id, glass,
                                         self._now())
            messages.reply(session, user_id, reply.response_url,
                           break_glass.submitted_text(request, glass), self.deps.clock())
            return request

        request = self._run(reply, submit)
        if request is not None:
            self.deps.later(self.deps.runner.announce, request.id)

    def open_break_glass_review(self, value: str | None, user_id: str, trigger_id: str,
                                reply: ReplyTo) -> None:
        review = self._run(reply, lambda session: break_glass.check_can_review(
            session, self.deps.catalog, self.deps.groups, parse_id(value), user_id))
        if review is not None:
            self.open_view(trigger_id, break_glass_blocks.review_form(review), reply)

    def break_glass_reviewed(self, value: str | None, user_id: str, note: str | None,
                             reply: ReplyTo) -> None:
        def reviewed(session: Session):
            review = break_glass.mark_reviewed(session, self.deps.catalog, self.deps.groups,
                                               parse_id(value), user_id, note, self._now())
            messages.reply(session, user_id, reply.response_url,
                           f"Break-glass #{review.request_id} is marked reviewed.",
                           self.deps.clock())
            return review

        self._run(reply, reviewed)

    # -- a grant's own buttons -----------------------------------------------------------

    def end_grant(self, value: str | None, user_id: str, reply: ReplyTo) -> None:
        grant = self._run(reply, lambda session: grant_ops.end_early(
            session, parse_id(value), user_id, self.deps.clock()))
        if grant is not None:  # its expiry is now: the revoker takes it at once
            self.deps.later(self.deps.runner.revoke_grant, grant.id)

    def open_extend_form(self, value: str | None, user_id: str, trigger_id: str,
                         reply: ReplyTo) -> None:
        found = self._run(reply, lambda session: extensions.check_can_extend(
            session, self.deps.catalog, parse_id(value), user_id, self.deps.clock()))
        if found is not None:
            grant, resource = found
            self.open_view(trigger_id, blocks.extend_form(grant, resource), reply)

    def submit_extension(self, user_id: str, draft: ExtensionDraft, reply: ReplyTo) -> None:
        request = self._run(reply, lambda session: extensions.request_extension(
            session, self.deps.catalog, user_id, draft, self.deps.clock()))
        if request is not None:
            self.deps.later(self.deps.runner.announce, request.id)

    # -- Cancel and Revoke (services/lifecycle.py) ----------------------------------------

    def cancel_request(self, value: str | None, user_id: str, reply: ReplyTo) -> None:
        """The requester withdraws a pending request; every copy and the DM say so."""
        self._run(reply, lambda session: lifecycle.cancel_request(
            session, parse_id(value), user_id, self._now()))

    def ask_revoke_reason(self, value: str | None, user_id: str, trigger_id: str,
                          reply: ReplyTo) -> None:
        grant = self._run(reply, lambda session: lifecycle.check_can_revoke(
            session, self.deps.catalog, self.deps.groups, parse_id(value), user_id,
            self.deps.clock()))
        if grant is not None:
            self.open_view(trigger_id, blocks.revoke_form(grant), reply)

    def revoke_grant(self, value: str | None, user_id: str, reason: str | None,
                     reply: ReplyTo) -> None:
        """An approver or an admin ends a live grant now: decided (expiry now, who, why),
        then revoked like "I'm done"; the holder hears who and why."""
        def revoke(session: Session) -> Grant:
            grant = lifecycle.revoke_by(session, self.deps.catalog, self.deps.groups,
                                        parse_id(value), user_id, reason, self.deps.clock())
            messages.reply(session, user_id, reply.response_url,
                           f"Revoking <@{grant.requester_id}>'s access to {grant.resource} "
                           "now.", self.deps.clock())
            return grant

        grant = self._run(reply, revoke)
        if grant is not None:
            self.deps.later(self.deps.runner.revoke_grant, grant.id)

    # -- stale credentials ------------------------------------------------------------

    def deactivate_key(self, value: str | None, user_id: str, channel_id: str | None,
                       reply: ReplyTo) -> None:
        try:
            self._reply(reply, self.deps.hygiene.deactivate(parse_id(value), user_id,
                                                            channel_id))
        except AccessBotError as exc:  # refused, already resolved, or AWS said no
            self._reply(reply, user_message(exc))

    def cap_session(self, value: str | None, user_id: str, channel_id: str | None,
                    reply: ReplyTo) -> None:
        try:
            self._reply(reply, self.deps.hygiene.cap_session(parse_id(value), user_id,
                                                             channel_id))
        except AccessBotError as exc:  # refused, already resolved, or AWS said no
            self._reply(reply, user_message(exc))

    def will_fix(self, value: str | None, user_id: str, channel_id: str | None,
                 reply: ReplyTo) -> None:
        self._decide_finding(reply, lambda session: findings.will_fix(
            session, parse_id(value), user_id, channel_id, self.deps.clock()))

    def snooze(self, value: str | None, user_id: str, channel_id: str | None,
               reply: ReplyTo) -> None:
        self._decide_finding(reply, lambda session: findings.snooze(
            session, parse_id(value), user_id, channel_id, self.deps.clock(),
            self.deps.catalog.hygiene.snooze))

    def _decide_finding(self, reply: ReplyTo, use_case: Callable[[Session], object]) -> None:
        row = self._run(reply, use_case)
        if row is not None and row.message_ts:
            self.deps.hygiene.refresh_message(row.message_channel, row.message_ts)

    # -- the access review --------------------------------------------------------------

    def review_keep(self, value: str | None, user_id: str, channel_id: str | None,
                    reply: ReplyTo) -> None:
        """Keep: the message (every copy) shows it; a refusal is told to the clicker."""
        self._run(reply, lambda session: self._review().keep_in(
            session, parse_id(value), user_id, channel_id))

    def review_remove(self, value: str | None, user_id: str, channel_id: str | None,
                      reply: ReplyTo) -> None:
        """Remove: decided (and this task done) in one transaction, then re-checked live
        and removed; the clicker hears what happened."""
        try:
            said = self._review().remove(parse_id(value), user_id, channel_id,
                                         finish=self._finish_task)
        except _AlreadyDone:
            return
        except AccessBotError as exc:  # refused, decided already, or AWS said no
            said = user_message(exc)
        if getattr(self._local, "finished", False):
            self._answer(reply, said)  # the task ended with the decision
        else:
            self._reply(reply, said)

    def _review(self) -> ReviewRunner:
        if self.deps.review is None:
            raise NotFound("The access review is not set up in this process.")
        return self.deps.review

    # -- the overview: /request-access list and App Home -----------------------------------

    def show_list(self, user_id: str, reply: ReplyTo) -> None:
        """Rendered when sent (services/outbox.py), so it shows how things stand then."""
        self._run(reply, lambda session: messages.overview_reply(
            session, user_id, reply.response_url, self.deps.clock()))

    def home_opened(self, user_id: str) -> None:
        """Remember the Home tab (kept up to date from now on) and publish it."""
        def publish(session: Session) -> None:
            now = self.deps.clock()
            overview.home_opened(session, user_id, now)
            messages.home_refresh(session, [user_id], now)

        self._run(ReplyTo(user_id), publish)

    # -- helpers -----------------------------------------------------------------------

    def _run(self, reply: ReplyTo, use_case: Callable[[Session], T]) -> T | None:
        """One use case in one transaction, which also marks the task done; a domain error
        goes back to the user as text (in one transaction with the task's end)."""
        try:
            with transaction(self.deps.sessions) as session:
                result = use_case(session)
                self._finish_task(session)
                return result
        except _AlreadyDone:
            return None
        except AccessBotError as exc:
            self._reply(reply, user_message(exc))
            return None

    def _reply(self, to: ReplyTo, text: str) -> None:
        try:
            with transaction(self.deps.sessions) as session:
                messages.reply(session, to.user_id, to.response_url, text, self.deps.clock())
                self._finish_task(session)
        except _AlreadyDone:
            pass
