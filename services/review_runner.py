"""The access review end to end: find standing access (not through a live grant), ask the
people who can decide "keep or remove?", remind, escalate, do what they decide, and tell
the admins the outcome.

Order as everywhere: read AWS, commit what was found and the messages owed; a Remove
commits the decision, calls AWS, commits the result.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from accessbot.models import ReviewItem, ReviewStatus, transaction
from accessbot.services import grants as grant_ops
from accessbot.services import messages, people, reviews
from accessbot.services.catalog import (
    SLACK_CHANNEL_ID,
    SLACK_USER_ID,
    Catalog,
    Resource,
    ResourceKind,
)
from accessbot.services.clock import Clock, utcnow
from accessbot.services.hygiene import last_used
from accessbot.services.people import UserGroups
from accessbot.services.ports import (
    CredentialSource,
    IdentityCenterReview,
    LastAccessed,
    LookupFailed,
    ProviderError,
    StandingReview,
    side_of,
)
from accessbot.services.reviews import ADMINISTRATORS, Holder, PrincipalKind, Target, TargetKind
from accessbot.services.unused import unused_summary

log = logging.getLogger(__name__)

ROWS_PER_MESSAGE = 20  # two blocks a row, within Slack's 50 blocks a message
# a removal decided this long ago and not recorded: its worker died (AWS calls time out
# within a minute), so the follow-up carries it out
INTERRUPTED_AFTER = timedelta(minutes=5)
SLACK_TAG, EMAIL_TAG = "slack-user-id", "email"


class Owners(Protocol):
    """IAM users' tags, and Slack's user for an email (as hygiene's owner lookup)."""

    def tags_of(self, iam_user: str) -> dict[str, str]: ...

    def user_for_email(self, email: str) -> str | None: ...


@dataclass(frozen=True)
class ReviewSide:
    """What the review reads and changes in one account."""

    standing: StandingReview
    credentials: CredentialSource  # the credential report: IAM users' last activity
    owners: Owners
    last_accessed: LastAccessed | None = None  # IAM's access advisor, for unused services


class ReviewRunner:
    def __init__(self, sessions: sessionmaker[Session], catalog: Catalog,
                 sides: dict[str, ReviewSide], identity_center: IdentityCenterReview | None = None,
                 clock: Clock = utcnow, groups: UserGroups | None = None):
        self.sessions = sessions
        self.groups = groups  # approvers given as Slack user groups: each member decides
        self.catalog = catalog
        self.settings = catalog.review
        self.sides = sides  # account id ("" for the bot's own) -> its side
        self.identity_center = identity_center
        self.clock = clock

    def transaction(self):
        return transaction(self.sessions)

    def accounts(self) -> list[str]:
        """Where the review runs: the bot's own account, and each account a catalog
        group or role is in."""
        return [a for a in self.sides if a == "" or a in self.catalog.assumed_accounts()]

    def _side(self, account: str) -> ReviewSide:
        return side_of(self.sides, account)

    @property
    def _reminder(self) -> timedelta:
        return self.catalog.hygiene.reminder_interval

    @property
    def _escalate_after(self) -> timedelta:
        return self.catalog.hygiene.escalate_after

    # -- a review --------------------------------------------------------------------

    def review(self, account: str = "") -> dict:
        """Find the account's standing access and ask about it. ProviderError propagates
        (the job tries again at its next check)."""
        now = self.clock()
        found = self._find(account, now)
        with self.transaction() as session:
            run = reviews.start_run(session, account, now)
            synced = reviews.sync(session, run, found, now)
            for row in synced.gone:
                messages.review_decided(session, row.id, now)
            if not synced.opened:  # nothing new: the earlier runs' rows are still asked
                nothing = not synced.refreshed
                reviews.close(session, run, now, told=nothing and self._admins())
                if nothing and self._admins():
                    messages.review_outcome(session, run.id, now)  # "none found"
            run_id = run.id
        told = self._tell(account, now)
        closed = self._close(account, now)
        return {"account": account or "own", "run": run_id, "targets": len(found),
                "items": sum(len(h) for h in found.values()), "new": len(synced.opened),
                "gone": len(synced.gone), "messages": told, "closed": closed}

    def follow_up(self, account: str = "") -> dict:
        """Finish interrupted removals; remind, escalate, close: for the account's open
        items (run every check)."""
        now = self.clock()
        return {"account": account or "own", "finished": self._finish_removals(account, now),
                "messages": self._tell(account, now),
                "escalated": self._escalate(account, now),
                "closed": self._close(account, now)}

    def _find(self, account: str, now: datetime) -> dict[Target, list[Holder]]:
        side = self._side(account)
        emails: dict[str, str | None] = {}
        found: dict[Target, list[Holder]] = {}
        groups, roles = self._iam_targets(account)
        with self.transaction() as session:
            granted = grant_ops.granted_members(session, set(groups), account)
            granted_sso = grant_ops.granted_identity_center(session)
        for name, resource in groups.items():
            held = side.standing.group(name)
            if held is None:
                log.warning("access review: IAM group %s (account %s) does not exist", name,
                            account or "own")
                continue
            target = Target(TargetKind.IAM_GROUP, name, self._deciders(resource, None),
                            resource.name if resource else None, self._unused(side, held.arn, now))
            found[target] = [Holder(PrincipalKind.IAM_USER, user, "member",
                                    slack=self._slack_of(side, user, emails))
                             for user in sorted(held.members - granted.get(name, set()))]
        for name, resource in roles.items():
            held = side.standing.role(name)
            if held is None:
                log.warning("access review: IAM role %s (account %s) does not exist", name,
                            account or "own")
                continue
            note = "; ".join(filter(None, [
                f"role last used {held.last_used:%Y-%m-%d}" if held.last_used
                else "role not used lately (RoleLastUsed is empty)",
                self._unused(side, held.arn, now)]))
            target = Target(TargetKind.IAM_ROLE, name,
                            self._deciders(resource, self._owner(side, held.owner_tag, emails)),
                            resource.name if resource else None, note)
            found[target] = [Holder(PrincipalKind.ROLE_PRINCIPAL, principal,
                                    "trusted by the role") for principal in held.trustees]
        if self.catalog.admin_channel:
            admins = side.standing.direct_admins()
            target = Target(TargetKind.ADMINISTRATORS, ADMINISTRATORS,
                            (self.catalog.admin_channel,))
            found[target] = [Holder(PrincipalKind.IAM_USER, a.user, a.how, via=a.policy,
                                    slack=self._slack_of(side, a.user, emails),
                                    unused=self._unused(side, a.user_arn, now)) for a in admins]
        if account == "" and self.identity_center is not None:
            found |= self._identity_center(granted_sso)
        self._add_last_activity(side, found)
        return found

    def _iam_targets(self, account: str) -> tuple[dict[str, Resource | None],
                                                   dict[str, Resource | None]]:
        """Group and role names of the account -> their catalog resource (None: from
        review.groups / review.roles)."""
        groups: dict[str, Resource | None] = {}
        roles: dict[str, Resource | None] = {}
        where = (account,) if account else ()
        for resource in self.catalog.resources.values():
            if resource.accounts != where:
                continue
            if resource.kind is ResourceKind.IAM_GROUP:
                groups.setdefault(resource.target, resource)
            elif resource.kind is ResourceKind.IAM_ROLE:
                roles.setdefault(resource.target, resource)
        if not account:
            for name in self.settings.groups:
                groups.setdefault(name, None)
            for name in self.settings.roles:
                roles.setdefault(name, None)
        return groups, roles

    def _identity_center(self, granted: dict[tuple[str, str, str], set[str]]
                         ) -> dict[Target, list[Holder]]:
        standing = self.identity_center
        found: dict[Target, list[Holder]] = {}
        names: dict[str, str] = {}

        def name(user: str) -> str:
            if user not in names:
                names[user] = standing.user_name(user)
            return names[user]

        for resource in self.catalog.resources.values():
            if resource.kind is ResourceKind.SSO_PERMISSION_SET:
                holders = []
                for account in resource.accounts:
                    explained = granted.get((resource.kind.value, resource.target, account),
                                            set())
                    holders += [Holder(PrincipalKind.SSO_USER, user, f"assigned in account "
                                       f"{account}", via=account, label=name(user))
                                for user in sorted(standing.assigned(resource.target, account)
                                                   - explained)]
                kind = TargetKind.SSO_PERMISSION_SET
            elif resource.kind is ResourceKind.SSO_GROUP:
                explained = granted.get((resource.kind.value, resource.target, ""), set())
                holders = [Holder(PrincipalKind.SSO_USER, user, "member", label=name(user))
                           for user in sorted(standing.members(resource.target) - explained)]
                kind = TargetKind.SSO_GROUP
            else:
                continue
            found[Target(kind, resource.target, resource.approvers, resource.name)] = holders
        return found

    def _add_last_activity(self, side: ReviewSide, found: dict[Target, list[Holder]]) -> None:
        """IAM users' last activity from the credential report (read once, if any)."""
        if not any(h.principal_kind is PrincipalKind.IAM_USER for hs in found.values()
                   for h in hs):
            return
        activity = {row.user: last_used(row) for row in side.credentials.report()}
        for target, holders in found.items():
            found[target] = [replace(h, last_activity=activity.get(h.principal))
                             if h.principal_kind is PrincipalKind.IAM_USER else h
                             for h in holders]

    def _unused(self, side: ReviewSide, arn: str, now: datetime) -> str | None:
        """"grants 14 services, used 2 in 90d: s3, logs"; None when unknown or nothing."""
        if side.last_accessed is None:
            return None
        try:
            uses = side.last_accessed.services(arn)
        except ProviderError as exc:
            log.info("access review: no last-accessed data for %s: %s", arn, exc)
            return None
        return unused_summary(uses, now, self.settings.unused_service_age)

    def _deciders(self, resource: Resource | None, owner: str | None) -> tuple[str, ...]:
        """The resource's approvers, else the owner tag's Slack user or channel, else the
        admin channel (none: nobody can be asked)."""
        if resource is not None:
            return people.in_order(resource.approvers, self.groups)
        if owner:
            return (owner,)
        return (self.catalog.admin_channel,) if self.catalog.admin_channel else ()

    def _owner(self, side: ReviewSide, value: str | None,
               emails: dict[str, str | None]) -> str | None:
        """A role's `owner` tag as a Slack user or channel (an email is looked up)."""
        if not value:
            return None
        if SLACK_USER_ID.match(value) or SLACK_CHANNEL_ID.match(value):
            return value
        return self._email(side, value, emails)

    def _slack_of(self, side: ReviewSide, iam_user: str,
                  emails: dict[str, str | None]) -> str | None:
        """The Slack user an IAM user belongs to (its tags), so that nobody decides about
        their own access; None when unknown."""
        tags = side.owners.tags_of(iam_user)
        if SLACK_USER_ID.match(tags.get(SLACK_TAG, "")):
            return tags[SLACK_TAG]
        return self._email(side, tags.get(EMAIL_TAG), emails)

    @staticmethod
    def _email(side: ReviewSide, value: str | None,
               emails: dict[str, str | None]) -> str | None:
        if not value or "@" not in value:
            return None
        address = value.lower()
        if address not in emails:
            try:
                emails[address] = side.owners.user_for_email(address)
            except LookupFailed as exc:
                log.warning("access review: could not look up %s in Slack: %s", address, exc)
                return None
        return emails[address]

    # -- telling -----------------------------------------------------------------------

    def _tell(self, account: str, now: datetime) -> int:
        """Each target with something due: all its open rows to each of its deciders (a
        reminder when they were told before), ROWS_PER_MESSAGE a message."""
        sent = 0
        with self.transaction() as session:
            for rows in reviews.due(session, account, now, self._reminder).values():
                told = [d for d in reviews.deciders(rows[0]) if d]
                if not told:
                    log.warning("access review: nobody to ask about %s (no approvers, owner "
                                "tag or admin_channel)", reviews.target_name(rows[0]))
                    continue
                reminder = any(r.last_told_at is not None for r in rows)
                reviews.mark_told(session, rows, now)
                for destination in told:
                    for start in range(0, len(rows), ROWS_PER_MESSAGE):
                        messages.review_ask(session, destination,
                                            [r.id for r in rows[start:start + ROWS_PER_MESSAGE]],
                                            now, reminder)
                        sent += 1
        return sent

    def _admins(self) -> bool:
        return bool(self.catalog.admin_channel)

    def _escalate(self, account: str, now: datetime) -> int:
        if not self.catalog.admin_channel:
            return 0
        with self.transaction() as session:
            rows = reviews.escalation_due(session, account, now, self._escalate_after)
            reviews.mark_escalated(session, rows, now)
            by_target: dict[tuple[str, str], list[int]] = {}
            for row in rows:  # one message per target, as the deciders got
                by_target.setdefault((row.target_kind, row.target), []).append(row.id)
            for ids in by_target.values():
                for start in range(0, len(ids), ROWS_PER_MESSAGE):
                    messages.review_escalated(session, ids[start:start + ROWS_PER_MESSAGE],
                                              now)
        return len(rows)

    def _close(self, account: str, now: datetime) -> int:
        """Runs with nothing open, or open twice escalate_after (escalated, and as long
        again for the admins): the unanswered become UNANSWERED, the admins get the outcome."""
        with self.transaction() as session:
            runs = reviews.closing_due(session, account, now, 2 * self._escalate_after)
            for run in runs:
                undecided = [r.id for r in reviews.run_items(session, run.id)
                             if r.status is ReviewStatus.OPEN]
                reviews.close(session, run, now)
                for item_id in undecided:
                    messages.review_decided(session, item_id, now)
                if self.catalog.admin_channel:
                    messages.review_outcome(session, run.id, now)
        return len(runs)

    # -- clicks ------------------------------------------------------------------------

    def keep_in(self, session: Session, item_id: int, user_id: str,
                channel_id: str | None) -> ReviewItem:
        """Keep, in the caller's transaction; every copy of the message shows it."""
        now = self.clock()
        row = reviews.keep(session, item_id, user_id, channel_id, self.catalog.admin_channel,
                           now)
        messages.review_decided(session, item_id, now)
        return row

    def remove(self, item_id: int, user_id: str, channel_id: str | None,
               finish: Callable[[Session], None] = lambda session: None) -> str:
        """Re-check live, then remove; what happened, for the clicker. `finish` runs in the
        decision's transaction (the inbox task's end)."""
        with self.transaction() as session:
            target = reviews.claim_removal(session, item_id, user_id, channel_id,
                                           self.catalog.admin_channel, self.clock())
            finish(session)
        try:
            still = self._carry_out(target, user_id)
        except ProviderError:
            with self.transaction() as session:
                reviews.released(session, item_id, user_id)
            raise
        if still:
            return f"Removed: {target.said}."
        return f"Nothing to remove, it was already gone (checked live): {target.said}."

    def _carry_out(self, target: reviews.ToRemove, user_id: str) -> bool:
        """Re-check live, take the access away if it is still there, record which; whether
        it was. Idempotent: "not a member" is success."""
        still = self._still_there(target)
        if still:
            self._take_away(target)
        with self.transaction() as session:
            now = self.clock()
            if still:
                reviews.removed(session, target.item_id, user_id, now)
            else:
                reviews.gone(session, target.item_id, user_id, now)
            messages.review_decided(session, target.item_id, now)
        return still

    def _finish_removals(self, account: str, now: datetime) -> int:
        """Removals a dead worker decided but never finished: the decision stands (it was
        committed, and the clicker told nothing yet), so carry it out now."""
        with self.transaction() as session:
            stuck = reviews.interrupted_removals(session, account, now, INTERRUPTED_AFTER)
        finished = 0
        for target, user_id in stuck:
            try:
                self._carry_out(target, user_id)
                finished += 1
            except ProviderError as exc:  # the next check tries again
                log.warning("access review: finishing the removal of %s failed: %s",
                            target.said, exc)
        return finished

    def _still_there(self, target: reviews.ToRemove) -> bool:
        if target.target_kind is TargetKind.IAM_GROUP:
            held = self._side(target.account).standing.group(target.target)
            return held is not None and target.principal in held.members
        if target.target_kind is TargetKind.ADMINISTRATORS:
            return self._side(target.account).standing.has_policy(target.principal, target.via)
        if self.identity_center is None:
            raise ProviderError("IAM Identity Center is not configured any more",
                                retryable=False)
        if target.target_kind is TargetKind.SSO_PERMISSION_SET:
            return target.principal in self.identity_center.assigned(target.target, target.via)
        return target.principal in self.identity_center.members(target.target)

    def _take_away(self, target: reviews.ToRemove) -> None:
        if target.target_kind is TargetKind.IAM_GROUP:
            self._side(target.account).standing.remove_member(target.target, target.principal)
        elif target.target_kind is TargetKind.ADMINISTRATORS:
            self._side(target.account).standing.detach_admin(target.principal, target.via)
        elif target.target_kind is TargetKind.SSO_PERMISSION_SET:
            self.identity_center.remove_assignment(target.target, target.via, target.principal)
        else:
            self.identity_center.remove_member(target.target, target.principal)
