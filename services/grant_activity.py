"""After a grant ends: what its holder did during it, from CloudTrail, told and kept.

A grant that was in place and has been revoked is due `cloudtrail.delay` after it ended
(CloudTrail delivers events within about 15 minutes; services/grants.py sets
activity_due_at). The job `grant-activity` leases due grants (the grant row's lease,
free once a grant is revoked), looks the holder up in each of the grant's accounts, and
in one transaction stores the summary, writes the audit row and owes the thread replies
and the requester's DM. A failed lookup is retried with backoff and given up a day after
the grant ended; the audit row says so.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from accessbot.models import Grant, GrantStatus, transaction
from accessbot.services import account_faults, audit, messages
from accessbot.services.activity import Summary, summarize
from accessbot.services.audit import Action
from accessbot.services.catalog import SSO_KINDS, Catalog
from accessbot.services.clock import Clock, utcnow
from accessbot.services.ports import AccountUnreachable, Activity, ProviderError, StandingAccess

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)  # a long grant's lookup reads many pages at 2 calls a second
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=1)
BATCH = 20  # grants looked up per run; the next run takes the rest


@dataclass
class ActivityReport:
    summarised: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)


def due(session: Session, now: datetime, limit: int = BATCH) -> list[int]:
    return list(session.scalars(
        select(Grant.id)
        .where(Grant.activity_due_at <= now, Grant.activity_done_at.is_(None),
               Grant.status == GrantStatus.REVOKED,
               or_(Grant.lease_until.is_(None), Grant.lease_until < now))
        .order_by(Grant.activity_due_at).limit(limit)))


def claim(session: Session, grant_id: int, owner: str, now: datetime) -> Grant | None:
    """Lease a due grant for its lookup; None when another worker has it or it is done."""
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.activity_due_at <= now,
               Grant.activity_done_at.is_(None), Grant.status == GrantStatus.REVOKED,
               or_(Grant.lease_until.is_(None), Grant.lease_until < now))
        .values(lease_owner=owner, lease_until=now + LEASE,
                activity_attempts=Grant.activity_attempts + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    return session.get(Grant, grant_id, populate_existing=True)


def finish(session: Session, grant: Grant, owner: str, summary: Summary,
           now: datetime) -> bool:
    """Keep the summary, record it, owe the replies and the DM; False if no longer ours."""
    if not _end(session, grant.id, owner, activity=json.dumps(summary.to_json()),
                activity_done_at=now):
        return False
    grant = session.get(Grant, grant.id, populate_existing=True)
    audit.record(session, now, audit.SYSTEM, Action.ACTIVITY_SUMMARISED,
                 request_id=grant.request_id, grant_id=grant.id,
                 detail=json.dumps(summary.compact(), separators=(",", ":")))
    messages.grant_activity(session, grant, now)
    return True


def failed(session: Session, grant: Grant, owner: str, error: ProviderError,
           now: datetime) -> bool:
    """Retry later with backoff; True when given up (for good, or after a day)."""
    first_due = grant.revoked_at or now
    if error.retryable and now - first_due < GIVE_UP_AFTER:
        delay = min(FIRST_RETRY * 2 ** (grant.activity_attempts - 1), MAX_RETRY)
        _end(session, grant.id, owner, activity_due_at=now + delay)
        return False
    if _end(session, grant.id, owner, activity_done_at=now):
        audit.record(session, now, audit.SYSTEM, Action.ACTIVITY_UNAVAILABLE,
                     request_id=grant.request_id, grant_id=grant.id,
                     detail=f"gave up after {grant.activity_attempts} attempts: "
                            f"{str(error)[:1000]}")
    return True


def _end(session: Session, grant_id: int, owner: str, **values) -> bool:
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.lease_owner == owner,
               Grant.activity_done_at.is_(None))
        .values(lease_owner=None, lease_until=None, **values)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


class GrantActivity:
    """The job's use case: every due grant, looked up and summarised (or retried)."""

    def __init__(self, sessions: Callable[[], Session], catalog: Catalog, activity: Activity,
                 owner: str, names: StandingAccess | None = None, clock: Clock = utcnow):
        self.sessions = sessions
        self.catalog = catalog
        self.activity = activity
        self.names = names  # Identity Center user names, for the sso_ kinds
        self.owner = owner
        self.clock = clock

    def run(self) -> ActivityReport:
        report = ActivityReport()
        with transaction(self.sessions) as session:
            grant_ids = due(session, self.clock())
        for grant_id in grant_ids:
            self.look_up(grant_id, report)
        return report

    def look_up(self, grant_id: int, report: ActivityReport) -> None:
        with transaction(self.sessions) as session:
            grant = claim(session, grant_id, self.owner, self.clock())
        if grant is None:
            return
        try:
            summary = self._summary(grant)
        except ProviderError as exc:
            log.warning("grant #%s: activity lookup failed: %s", grant_id, exc)
            with transaction(self.sessions) as session:
                if failed(session, grant, self.owner, exc, self.clock()):
                    report.given_up.append(grant_id)
                else:
                    report.retried.append(grant_id)
                if isinstance(exc, AccountUnreachable):  # the admins hear once
                    account_faults.failed(session, exc.account, str(exc), self.clock())
            return
        with transaction(self.sessions) as session:
            if finish(session, grant, self.owner, summary, self.clock()):
                report.summarised.append(grant_id)

    def _summary(self, grant: Grant) -> Summary:
        user_name = self._user_name(grant)
        start, end = grant.granted_at or grant.starts_at, grant.revoked_at
        events, regions, truncated = [], [], False
        for account in grant.accounts.split(",") if grant.accounts else [""]:
            found = self.activity.events(account, user_name, start, end)
            events += found.events
            regions += [r for r in found.regions if r not in regions]
            truncated = truncated or found.truncated
        return summarize(events, user_name, start, end, tuple(regions), truncated)

    def _user_name(self, grant: Grant) -> str:
        """The name CloudTrail knows the holder by: the IAM user (a role grant's sessions
        must be named after it, aws/iam.py), or the Identity Center user's name."""
        if grant.kind not in SSO_KINDS:
            return grant.iam_user
        if self.names is None:
            raise ProviderError("IAM Identity Center is not set up in this bot",
                                retryable=False)
        name = self.names.user_name(grant.iam_user)
        if name == grant.iam_user:  # what user_name answers when it could not read it
            raise ProviderError(f"could not read the name of Identity Center user "
                                f"{grant.iam_user}")
        return name
