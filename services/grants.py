"""Grants: the lease-protected steps that put access in place and take it away.

Each function is one short transaction. AWS is called between them, never inside:
claim (commit) -> AWS call -> finish (commit). A lease on the row makes sure that of
several bot processes only one works on a grant at a time; a crash leaves the lease
to run out and the next sweep picks the grant up again.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.orm import Session, selectinload

from accessbot.models import AccessRequest, Grant, GrantStatus, UtcDateTime
from accessbot.services import audit
from accessbot.services.audit import Action
from accessbot.services.catalog import SSO_KINDS, Resource, ResourceKind
from accessbot.services.errors import Conflict, NotAuthorized, NotFound
from accessbot.services.ports import GrantSpec

# Longer than the slowest AWS call with its retries (aws/session.py: 3 x (5 s + 10 s)),
# so a live worker never loses its lease; a crashed worker's lease delays others this long.
LEASE = timedelta(seconds=60)
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=10)
ALERT_AFTER_ATTEMPTS = 5


@dataclass(frozen=True)
class Failure:
    attempts: int
    retry_at: datetime | None  # None: given up
    alert: bool  # True exactly once, when the admins should hear about it


def spec_of(grant: Grant, resource: Resource | None = None) -> GrantSpec:
    """What the provider needs; the conditions come from the resource as configured now."""
    return GrantSpec(grant_id=grant.id, iam_user=grant.iam_user, kind=grant.kind,
                     target=grant.target, expires_at=grant.expires_at,
                     accounts=tuple(grant.accounts.split(",")) if grant.accounts else (),
                     source_ips=resource.source_ips if resource else (),
                     require_mfa=resource.require_mfa if resource else False)


def get_grant(session: Session, grant_id: int) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"Grant #{grant_id} does not exist.")
    return grant


def claim_to_grant(session: Session, grant_id: int, owner: str, now: datetime) -> Grant | None:
    """Lease a PENDING, unexpired grant for applying; None if it is not ours to apply."""
    return _claim(session, grant_id, owner, now,
                  Grant.status == GrantStatus.PENDING, Grant.expires_at > now)


def claim_to_revoke(session: Session, grant_id: int, owner: str, now: datetime) -> Grant | None:
    """Lease an expired PENDING or ACTIVE grant for revoking; None if not due or taken."""
    claimed = claim_all_to_revoke(session, [grant_id], owner, now)
    return claimed[0] if claimed else None


def claim_all_to_revoke(session: Session, grant_ids: Sequence[int], owner: str,
                        now: datetime) -> list[Grant]:
    """claim_to_revoke for many grants in one statement: those leased, in id order."""
    leased = session.scalars(
        update(Grant)
        .where(Grant.id.in_(grant_ids), _live(), Grant.expires_at <= now,
               or_(Grant.lease_until.is_(None), Grant.lease_until < now))
        .values(lease_owner=owner, lease_until=now + LEASE)
        .returning(Grant)
        .execution_options(synchronize_session=False, populate_existing=True)).all()
    return sorted(leased, key=lambda grant: grant.id)


def finish_grant(session: Session, grant_id: int, owner: str, now: datetime,
                 role_arn: str | None) -> Grant | None:
    """PENDING -> ACTIVE, if we still hold the lease.

    granted_at keeps its first value when an extension had the grant applied again.
    """
    if not _finish(session, grant_id, owner, GrantStatus.PENDING, status=GrantStatus.ACTIVE,
                   granted_at=func.coalesce(Grant.granted_at, literal(now, UtcDateTime)),
                   role_arn=role_arn, last_error=None, next_attempt_at=None,
                   attempts=0, alerted_at=None):  # revocation retries count afresh
        return None
    grant = session.get(Grant, grant_id, populate_existing=True)
    audit.record(session, now, audit.SYSTEM, Action.GRANTED, request_id=grant.request_id,
                 grant_id=grant_id, detail=f"{grant.iam_user} -> {grant.kind} {grant.target} "
                                           f"until {grant.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    return grant


def finish_revoke(session: Session, grant_id: int, owner: str, now: datetime) -> Grant | None:
    """ACTIVE -> REVOKED (or PENDING -> FAILED when it never took effect)."""
    done = finish_all_revoked(session, [grant_id], owner, now)
    return done[0] if done else None


def finish_all_revoked(session: Session, grant_ids: Sequence[int], owner: str,
                       now: datetime, activity_after: timedelta | None = None) -> list[Grant]:
    """finish_revoke for many grants in a few statements: those still ours, in id order.

    A grant that was in place (REVOKED) is due for its activity lookup `activity_after`
    from now (services/grant_activity.py); None: no lookup."""
    ends: dict[tuple[GrantStatus, GrantStatus, str], list[int]] = {}
    for grant in _reload(session, grant_ids):
        if grant.lease_owner != owner:
            continue
        # not the status: an extended role grant is PENDING again while IAM learns its new
        # expiry
        never_granted = grant.granted_at is None
        final = GrantStatus.FAILED if never_granted else GrantStatus.REVOKED
        reason = grant.end_reason or ("not granted in time" if never_granted else "expired")
        ends.setdefault((grant.status, final, reason), []).append(grant.id)
    finished: list[int] = []
    for (status, final, reason), ids in ends.items():
        finished += session.scalars(
            update(Grant)
            .where(Grant.id.in_(ids), Grant.lease_owner == owner, Grant.status == status)
            .values(lease_owner=None, lease_until=None, status=final, revoked_at=now,
                    end_reason=reason, next_attempt_at=None,
                    activity_due_at=(now + activity_after if activity_after is not None
                                     and final is GrantStatus.REVOKED else None))
            .returning(Grant.id)
            .execution_options(synchronize_session=False)).all()
    # with what their messages read (messages.grant_ended): two queries, not two a grant
    done = _reload(session, finished,
                   selectinload(Grant.request).selectinload(AccessRequest.messages))
    for grant in done:
        audit.record(session, now, audit.SYSTEM, Action.REVOKED, request_id=grant.request_id,
                     grant_id=grant.id, detail=grant.end_reason)
    return done


def fail_grant(session: Session, grant_id: int, owner: str, now: datetime,
               error: str) -> Grant | None:
    """PENDING -> FAILED for an error that retrying cannot fix."""
    if not _finish(session, grant_id, owner, GrantStatus.PENDING, status=GrantStatus.FAILED,
                   last_error=error[:2000], end_reason="could not be granted",
                   revoked_at=now, next_attempt_at=None):
        return None
    grant = session.get(Grant, grant_id, populate_existing=True)
    audit.record(session, now, audit.SYSTEM, Action.GRANT_FAILED, request_id=grant.request_id,
                 grant_id=grant_id, detail=error[:2000])
    return grant


def record_failure(session: Session, grant_id: int, owner: str, now: datetime, error: str,
                   action: Action) -> Failure | None:
    """Release the lease with a backoff before the next attempt; None if no longer ours."""
    grant = session.get(Grant, grant_id, populate_existing=True)
    if grant is None or grant.lease_owner != owner:
        return None
    attempts = grant.attempts + 1
    delay = min(FIRST_RETRY * 2 ** (attempts - 1), MAX_RETRY)
    alert = attempts >= ALERT_AFTER_ATTEMPTS and grant.alerted_at is None
    _finish(session, grant_id, owner, grant.status, attempts=attempts,
            next_attempt_at=now + delay, last_error=error[:2000],
            alerted_at=now if alert else grant.alerted_at)
    audit.record(session, now, audit.SYSTEM, action, request_id=grant.request_id,
                 grant_id=grant_id, detail=f"attempt {attempts}: {error[:1000]}")
    if alert:
        audit.record(session, now, audit.SYSTEM, Action.ADMINS_ALERTED,
                     request_id=grant.request_id, grant_id=grant_id)
    return Failure(attempts=attempts, retry_at=now + delay, alert=alert)


def record_dm(session: Session, grant_id: int, channel: str, ts: str) -> None:
    session.execute(update(Grant).where(Grant.id == grant_id)
                    .values(dm_channel=channel, dm_ts=ts))


def claim_warning(session: Session, grant_id: int, now: datetime) -> Grant | None:
    """Mark the expiry warning as sent, once; None if it is not due or was sent."""
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.status == GrantStatus.ACTIVE,
               Grant.warned_at.is_(None), Grant.warn_at <= now, Grant.expires_at > now)
        .values(warned_at=now).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    grant = session.get(Grant, grant_id, populate_existing=True)
    audit.record(session, now, audit.SYSTEM, Action.WARNED, request_id=grant.request_id,
                 grant_id=grant_id)
    return grant


def end_early(session: Session, grant_id: int, user_id: str, now: datetime) -> Grant:
    """The requester is done: move the expiry to now so the revoker takes it at once."""
    grant = get_grant(session, grant_id)
    if user_id != grant.requester_id:
        raise NotAuthorized("Only the person who holds this access can end it.")
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.status.in_((GrantStatus.PENDING, GrantStatus.ACTIVE)),
               Grant.expires_at > now)
        .values(expires_at=now, end_reason="ended early by the requester")
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"Your access to {grant.resource} has already ended.")
    audit.record(session, now, user_id, Action.ENDED_EARLY, request_id=grant.request_id,
                 grant_id=grant_id)
    return session.get(Grant, grant_id, populate_existing=True)


def due_to_revoke(session: Session, now: datetime, limit: int = 500) -> list[int]:
    return _due(session, now, limit,
                Grant.status.in_((GrantStatus.PENDING, GrantStatus.ACTIVE)),
                Grant.expires_at <= now)


def due_to_grant(session: Session, now: datetime, limit: int = 500) -> list[int]:
    return _due(session, now, limit, Grant.status == GrantStatus.PENDING, Grant.expires_at > now)


def due_to_warn(session: Session, now: datetime, limit: int = 500) -> list[int]:
    return list(session.scalars(
        select(Grant.id).where(Grant.status == GrantStatus.ACTIVE, Grant.warned_at.is_(None),
                               Grant.warn_at <= now, Grant.expires_at > now)
        .order_by(Grant.warn_at).limit(limit)
    ))


def _live():
    return Grant.status.in_((GrantStatus.PENDING, GrantStatus.ACTIVE))


def live_grants(session: Session) -> list[Grant]:
    """Grants that still need a timer in this process (for start-up)."""
    return list(session.scalars(select(Grant).where(_live())))


def granted_members(session: Session, groups: set[str], account: str = ""
                    ) -> dict[str, set[str]]:
    """Group of the account ("": the bot's own) -> the IAM users a live grant puts (or is
    putting) in it."""
    members: dict[str, set[str]] = {}
    for group, iam_user in session.execute(select(Grant.target, Grant.iam_user).where(
            _live(), Grant.kind == ResourceKind.IAM_GROUP.value, Grant.target.in_(groups),
            Grant.accounts == account)):
        members.setdefault(group, set()).add(iam_user)
    return members


def _reload(session: Session, grant_ids: Sequence[int], *options) -> list[Grant]:
    if not grant_ids:
        return []
    return list(session.scalars(select(Grant).where(Grant.id.in_(grant_ids)).order_by(Grant.id)
                                .options(*options).execution_options(populate_existing=True)))


def granted_identity_center(session: Session) -> dict[tuple[str, str, str], set[str]]:
    """(kind, target, account) -> the Identity Center users live grants give it to (for a
    group, account is '')."""
    held: dict[tuple[str, str, str], set[str]] = {}
    for kind, target, accounts, user in session.execute(
            select(Grant.kind, Grant.target, Grant.accounts, Grant.iam_user).where(
                _live(), Grant.kind.in_([k.value for k in SSO_KINDS]))):
        for account in accounts.split(",") if accounts else [""]:
            held.setdefault((kind, target, account), set()).add(user)
    return held


def _claim(session: Session, grant_id: int, owner: str, now: datetime,
           *conditions) -> Grant | None:
    return session.scalars(
        update(Grant)
        .where(Grant.id == grant_id, *conditions,
               or_(Grant.lease_until.is_(None), Grant.lease_until < now))
        .values(lease_owner=owner, lease_until=now + LEASE)
        .returning(Grant)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one_or_none()


def _finish(session: Session, grant_id: int, owner: str, expected: GrantStatus,
            **values) -> bool:
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.lease_owner == owner, Grant.status == expected)
        .values(lease_owner=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _due(session: Session, now: datetime, limit: int, *conditions) -> list[int]:
    return list(session.scalars(
        select(Grant.id)
        .where(*conditions,
               or_(Grant.next_attempt_at.is_(None), Grant.next_attempt_at <= now),
               or_(Grant.lease_until.is_(None), Grant.lease_until < now))
        .order_by(Grant.expires_at).limit(limit)
    ))
