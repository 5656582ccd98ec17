"""What the bot owes people, as outbox rows (services/outbox.py), one function per message.

Each is called inside the transaction of the state change that owes it. `after_sent` is
the other half: what the database learns when Slack has taken a message (where a copy
was posted, so that it can be updated in place later).
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from accessbot.models import (
    AccessRequest,
    ApprovalMessage,
    CredentialFinding,
    Grant,
    RequestApproval,
    RequestStatus,
)
from accessbot.services import findings, grants, overview, reviews
from accessbot.services.account_audit import Deviation
from accessbot.services.catalog import is_channel
from accessbot.services.outbox import ADMINS, Kind, Owed, is_pending, owe


def copy_queue(request_id: int, destination: str) -> str:
    """An approver's DM is one queue; a channel gets one queue per request."""
    return f"{destination}:request-{request_id}" if is_channel(destination) else destination


# -- requests -----------------------------------------------------------------------

def request_copies(session: Session, request: AccessRequest, destinations: list[str],
                   now: datetime) -> None:
    for destination in destinations:
        owe(session, Kind.REQUEST_COPY, copy_queue(request.id, destination), now,
            request_id=request.id, destination=destination)
    home_refresh(session, destinations, now)  # approvers' "waiting for your decision"


def request_submitted(session: Session, request: AccessRequest, now: datetime) -> None:
    owe(session, Kind.REQUEST_SUBMITTED, request.requester_id, now, request_id=request.id)
    home_refresh(session, [request.requester_id], now)


def request_failed(session: Session, request: AccessRequest, why: str, now: datetime) -> None:
    owe(session, Kind.REQUEST_FAILED, request.requester_id, now, request_id=request.id, why=why)
    home_refresh(session, [request.requester_id], now)


def request_decided(session: Session, request: AccessRequest, now: datetime) -> None:
    """Every posted copy shows the decision (and gets it as a thread reply); a denial or an
    expiry is also told to the requester (an approval is told by the grant DM)."""
    for message in request.messages:
        copy_updated(session, message, now)
        owe(session, Kind.DECISION_REPLY, copy_queue(request.id, message.destination), now,
            message_id=message.id)
    if request.status in (RequestStatus.DENIED, RequestStatus.EXPIRED):
        owe(session, Kind.REQUEST_DECIDED, request.requester_id, now, request_id=request.id)
    home_refresh(session, [request.requester_id, request.decided_by or request.requester_id,
                           *(m.destination for m in request.messages)], now)
    if request.waiting_dm_ts:  # its Cancel button goes (not posted yet: see after_sent)
        waiting_dm_updated(session, request.id, request.requester_id, now)


def waiting_dm_updated(session: Session, request_id: int, requester_id: str,
                       now: datetime) -> None:
    """Re-render the requester's "waiting" DM in place (once it was posted)."""
    owe(session, Kind.WAITING_DM_UPDATE, requester_id, now, target=f"waiting-dm:{request_id}",
        request_id=request_id)


def request_reminder(session: Session, request: AccessRequest, destination: str,
                     approvers: list[str], message_id: int | None, number: int,
                     now: datetime) -> None:
    """A reminder to approvers who have not answered: a DM (message_id None), or a thread
    reply mentioning them under the channel copy `message_id`."""
    queue = copy_queue(request.id, destination) if message_id else destination
    owe(session, Kind.REQUEST_REMINDER, queue, now, request_id=request.id,
        destination=destination, approvers=approvers, message_id=message_id, number=number)


def copy_updated(session: Session, message: ApprovalMessage, now: datetime) -> None:
    owe(session, Kind.REQUEST_COPY_UPDATE, copy_queue(message.request_id, message.destination),
        now, target=f"copy:{message.id}", message_id=message.id)


# -- grants ---------------------------------------------------------------------------

def grant_active(session: Session, grant: Grant, now: datetime) -> None:
    owe(session, Kind.GRANT_ACTIVE, grant.requester_id, now, grant_id=grant.id)
    home_refresh(session, [grant.requester_id], now)


def grant_extended(session: Session, grant: Grant, request: AccessRequest,
                   now: datetime) -> None:
    owe(session, Kind.GRANT_EXTENDED, grant.requester_id, now, grant_id=grant.id,
        request_id=request.id)
    home_refresh(session, [grant.requester_id], now)
    grant_dm_updated(session, grant, now)  # the grant DM shows the new expiry


def grant_expiring(session: Session, grant: Grant, now: datetime) -> None:
    owe(session, Kind.GRANT_EXPIRING, grant.requester_id, now, grant_id=grant.id)


def grant_ended(session: Session, grant: Grant, now: datetime) -> None:
    owe(session, Kind.GRANT_ENDED, grant.requester_id, now, grant_id=grant.id)
    home_refresh(session, [grant.requester_id], now)
    grant_dm_updated(session, grant, now)  # takes "I'm done" off the grant DM
    grant_copies_updated(session, grant, now)  # and Revoke off the approval messages


def grant_copies_updated(session: Session, grant: Grant, now: datetime) -> None:
    """Every copy of the request that gave the grant shows how the grant stands."""
    for message in grant.request.messages:
        copy_updated(session, message, now)


def grant_failed(session: Session, grant: Grant, now: datetime) -> None:
    owe(session, Kind.GRANT_FAILED, grant.requester_id, now, grant_id=grant.id)
    home_refresh(session, [grant.requester_id], now)


def grant_partly(session: Session, grant: Grant, done: tuple[str, ...],
                 failed: dict[str, str], now: datetime) -> None:
    """Each account's result, when some of a grant's accounts failed (then retried)."""
    owe(session, Kind.GRANT_PARTLY, grant.requester_id, now, grant_id=grant.id,
        done=list(done), failed=failed)


def grant_activity(session: Session, grant: Grant, now: datetime) -> None:
    """What the grant was used for: a reply in the thread of each copy of its request, and
    a DM to the requester."""
    for message in grant.request.messages:
        owe(session, Kind.ACTIVITY_REPLY, copy_queue(grant.request_id, message.destination),
            now, message_id=message.id, grant_id=grant.id)
    owe(session, Kind.ACTIVITY_DM, grant.requester_id, now, grant_id=grant.id)


def grant_dm_updated(session: Session, grant: Grant, now: datetime) -> None:
    owe(session, Kind.GRANT_DM_UPDATE, grant.requester_id, now, target=f"grant-dm:{grant.id}",
        grant_id=grant.id)


# -- to people and admins ---------------------------------------------------------------

def admin_alert(session: Session, text: str, now: datetime) -> None:
    """To the admin channel (read when sending; without one the alert is logged)."""
    owe(session, Kind.ADMIN_ALERT, ADMINS, now, text=text)


def reply(session: Session, user_id: str, response_url: str | None, text: str,
          now: datetime) -> None:
    """A short answer to someone who acted: ephemeral through the response_url, else a DM."""
    owe(session, Kind.REPLY, user_id, now, user_id=user_id, response_url=response_url,
        text=text)


# -- the overview: /request-access list and the App Home tab ---------------------------

def overview_reply(session: Session, user_id: str, response_url: str | None,
                   now: datetime) -> None:
    """The user's grants and requests, rendered when sent: ephemeral, else a DM."""
    owe(session, Kind.OVERVIEW, user_id, now, user_id=user_id, response_url=response_url)


def home_refresh(session: Session, user_ids: Iterable[str], now: datetime) -> None:
    """Republish the Home tab of those of `user_ids` who have opened it (channels and
    people who never opened it are skipped); pending refreshes of one Home coalesce."""
    for user_id in overview.home_viewers(session, {u for u in user_ids if not is_channel(u)}):
        key = f"home:{user_id}"
        owe(session, Kind.HOME_REFRESH, key, now, target=key, user_id=user_id)


# -- credential hygiene ------------------------------------------------------------------

def findings_digest(session: Session, owner: str, finding_ids: list[int], now: datetime) -> None:
    owe(session, Kind.FINDINGS_DIGEST, owner, now, owner=owner, finding_ids=finding_ids)


def findings_list(session: Session, channel: str, finding_ids: list[int], now: datetime) -> None:
    """Too many findings for cards in a channel: one summary with the full list as a file."""
    owe(session, Kind.FINDINGS_LIST, channel, now, owner=channel, finding_ids=finding_ids)


def findings_updated(session: Session, channel: str, ts: str, now: datetime) -> None:
    """Re-render a posted findings message from the database (or mark it superseded)."""
    key = f"digest:{channel}:{ts}"
    owe(session, Kind.FINDINGS_UPDATE, key, now, target=key, channel=channel, ts=ts)


def findings_resolved(session: Session, owner: str, finding_ids: list[int],
                      now: datetime) -> None:
    owe(session, Kind.FINDINGS_RESOLVED, owner, now, owner=owner, finding_ids=finding_ids)


def findings_escalated(session: Session, finding_ids: list[int], now: datetime) -> None:
    owe(session, Kind.FINDINGS_ESCALATED, ADMINS, now, finding_ids=finding_ids)


def key_final_warning(session: Session, row: CredentialFinding, when: datetime,
                      now: datetime) -> None:
    owe(session, Kind.KEY_FINAL_WARNING, row.owner, now, target=f"final-warning:{row.id}",
        owner=row.owner, finding_id=row.id, when=when.isoformat())


def final_warning_owed(session: Session, finding_id: int) -> bool:
    """A final warning on its way (not yet taken by Slack): do not owe another."""
    return is_pending(session, f"final-warning:{finding_id}")


def findings_preview(session: Session, by_owner: dict[str, list[int]], now: datetime) -> None:
    """Report mode: the admins see what notify mode would have told whom."""
    owe(session, Kind.FINDINGS_PREVIEW, ADMINS, now, by_owner=by_owner)


def findings_summary(session: Session, period_seconds: float, now: datetime) -> None:
    owe(session, Kind.FINDINGS_SUMMARY, ADMINS, now, at=now.isoformat(),
        period_seconds=period_seconds)


def account_audit(session: Session, deviations: list[Deviation], now: datetime,
                  account: str = "") -> None:
    owe(session, Kind.ACCOUNT_AUDIT, ADMINS, now, account=account,
        deviations=[[d.check, d.subject, d.detail] for d in deviations])


# -- the access review --------------------------------------------------------------------

def review_ask(session: Session, destination: str, item_ids: list[int], now: datetime,
               reminder: bool = False) -> None:
    """One target's rows (at most one message's worth), to one of its deciders."""
    owe(session, Kind.REVIEW_ASK, destination, now, destination=destination,
        item_ids=item_ids, reminder=reminder)


def review_updated(session: Session, channel: str, ts: str, now: datetime) -> None:
    key = f"review:{channel}:{ts}"
    owe(session, Kind.REVIEW_UPDATE, key, now, target=key, channel=channel, ts=ts)


def review_decided(session: Session, item_id: int, now: datetime) -> None:
    """Every posted message listing the item shows the decision."""
    for channel, ts in reviews.copies_of(session, item_id):
        review_updated(session, channel, ts, now)


def review_escalated(session: Session, item_ids: list[int], now: datetime) -> None:
    owe(session, Kind.REVIEW_ESCALATED, ADMINS, now, item_ids=item_ids)


def review_outcome(session: Session, run_id: int, now: datetime) -> None:
    owe(session, Kind.REVIEW_OUTCOME, ADMINS, now, run_id=run_id)


# -- break-glass ----------------------------------------------------------------------------

def break_glass_reminder(session: Session, approver_id: str, review_id: int,
                         now: datetime) -> None:
    owe(session, Kind.BREAK_GLASS_REMINDER, approver_id, now, approver_id=approver_id,
        review_id=review_id)


def break_glass_escalated(session: Session, review_id: int, now: datetime) -> None:
    owe(session, Kind.BREAK_GLASS_ESCALATED, ADMINS, now, review_id=review_id)


def break_glass_reviewed(session: Session, request: AccessRequest, now: datetime) -> None:
    """Every posted copy of the break-glass shows the review (and gets it in its thread)."""
    for message in request.messages:
        copy_updated(session, message, now)
        owe(session, Kind.DECISION_REPLY, copy_queue(request.id, message.destination), now,
            message_id=message.id)


# -- what a delivery teaches the database ------------------------------------------------

def after_sent(session: Session, owed: Owed, channel: str | None, ts: str | None,
               now: datetime) -> None:
    """Record where Slack put a posted message, and what that changes."""
    args = owed.args
    if owed.kind is Kind.REQUEST_COPY and ts:
        message = session.scalar(select(ApprovalMessage).where(
            ApprovalMessage.request_id == args["request_id"],
            ApprovalMessage.destination == args["destination"]))
        if message is None:
            message = ApprovalMessage(request_id=args["request_id"],
                                      destination=args["destination"])
            session.add(message)
        message.channel, message.ts = channel, ts  # a copy posted again: the newest counts
        session.flush()
        # FOR SHARE: a decision committing meanwhile (its UPDATE) either sees this copy, or
        # is seen here; copies recorded side by side share the lock and do not deadlock
        status, decided_at = session.execute(
            select(AccessRequest.status, AccessRequest.decided_at)
            .where(AccessRequest.id == args["request_id"])
            .with_for_update(read=True)).one()
        if status is not RequestStatus.PENDING \
                and not (decided_at and decided_at <= owed.created_at):
            # decided while this copy was on its way (not: owed decided, approval: none or
            # break-glass, and rendered so)
            copy_updated(session, message, now)
        elif status is RequestStatus.PENDING and session.scalar(
                select(RequestApproval.id).where(
                    RequestApproval.request_id == args["request_id"]).limit(1)) is not None:
            # N-of-M: an approval counted after this copy was rendered owed no update of it
            # (it was not recorded yet); one more update, if it was not, changes nothing
            copy_updated(session, message, now)
    elif owed.kind is Kind.REQUEST_SUBMITTED and ts:
        # the row is ours now: a decision reads the ts after us, or before, and the status
        # returned is the one after any decision that committed first
        request = session.execute(
            update(AccessRequest).where(AccessRequest.id == args["request_id"])
            .values(waiting_dm_channel=channel, waiting_dm_ts=ts)
            .returning(AccessRequest.id, AccessRequest.requester_id, AccessRequest.status)
            .execution_options(synchronize_session=False)).one()
        if request.status is not RequestStatus.PENDING:  # settled while it was on its way
            waiting_dm_updated(session, request.id, request.requester_id, now)
    elif owed.kind is Kind.GRANT_ACTIVE and ts:
        grants.record_dm(session, args["grant_id"], channel, ts)
    elif owed.kind is Kind.FINDINGS_DIGEST and ts:
        for old_channel, old_ts in findings.mark_posted(session, args["finding_ids"], channel,
                                                        ts):
            findings_updated(session, old_channel, old_ts, now)  # they live in the new one
    elif owed.kind is Kind.KEY_FINAL_WARNING:
        findings.mark_final_warning(session, args["finding_id"], now)
    elif owed.kind in (Kind.REVIEW_ASK, Kind.REVIEW_ESCALATED) and ts:
        if reviews.mark_posted(session, args["item_ids"], channel, ts):
            review_updated(session, channel, ts, now)  # decided while it was on its way
