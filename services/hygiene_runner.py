"""Credential hygiene end to end: read the report, remember the findings, tell the owners,
escalate, and (when configured) deactivate keys nobody fixed. Also the weekly summary and
the account audit.

Order as everywhere: commit what was found, then talk to Slack and AWS, then commit what
happened. A crash in between is repaired by the next run: findings are re-derived from the
report and told again only when they are due.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from accessbot.models import transaction
from accessbot.services import account_faults, findings, job_runs, messages
from accessbot.services import grants as grant_ops
from accessbot.services.account_audit import (
    Deviation,
    administrator_deviations,
    password_policy_deviations,
    unmanaged_member_deviations,
)
from accessbot.services.audit import SYSTEM
from accessbot.services.catalog import (
    SLACK_CHANNEL_ID,
    SLACK_USER_ID,
    Catalog,
    ResourceKind,
    is_channel,
)
from accessbot.services.clock import Clock, utcnow
from accessbot.services.durations import format_duration
from accessbot.services.findings import KeyToDeactivate
from accessbot.services.hygiene import ROLE_KINDS, ROOT_USER, FindingKind, evaluate, match_key
from accessbot.services.ports import (
    AccountUnreachable,
    CredentialSource,
    LookupFailed,
    ProviderError,
    RoleSource,
    StandingAccess,
    side_of,
)
from accessbot.services.role_hygiene import RoleFacts, evaluate_roles
from accessbot.services.runner import worker_id

log = logging.getLogger(__name__)

SLACK_TAG, EMAIL_TAG, OWNER_TAG = "slack-user-id", "email", "owner"
KEY_MATCH_BUDGET = 100  # ListAccessKeys calls a run: IAM's rate limit is shared with grants
PER_MESSAGE = 15  # three blocks per finding, within Slack's 50 blocks per message
CHANNEL_CARDS = 3 * PER_MESSAGE  # past this, a channel gets a summary and a CSV, no cards


class Owners(Protocol):
    """What the owner lookup needs: IAM user tags, and Slack's user for an email."""

    def tags_of(self, iam_user: str) -> dict[str, str]: ...

    def path_of(self, iam_user: str) -> str: ...

    def user_for_email(self, email: str) -> str | None: ...


@dataclass(frozen=True)
class AccountSide:
    """What hygiene reads and changes in one AWS account: its credential report and access
    keys, and its IAM users' tags and paths (who owns what)."""

    source: CredentialSource
    owners: Owners
    refresh_owners: Callable[[], object] = lambda: None
    roles: RoleSource | None = None  # its IAM roles (role hygiene); None: not looked at


class HygieneRunner:
    """Hygiene of the bot's own account (source, owners) and of each of `accounts` (account
    id -> its side): each account has its own report, findings, owners and audit."""

    def __init__(self, sessions: sessionmaker[Session], catalog: Catalog,
                 source: CredentialSource, owners: Owners,
                 refresh_owners: Callable[[], object] = lambda: None, clock: Clock = utcnow,
                 owner: str | None = None, standing: StandingAccess | None = None,
                 accounts: dict[str, AccountSide] | None = None,
                 roles: RoleSource | None = None):
        self.sessions = sessions
        self.standing = standing  # Identity Center: who holds the catalog's sso_ access
        self.catalog = catalog
        self.settings = catalog.hygiene
        self.sides = {"": AccountSide(source, owners, refresh_owners, roles),
                      **(accounts or {})}
        self.clock = clock
        self.owner = owner or worker_id()

    def transaction(self):
        return transaction(self.sessions)

    def _side(self, account: str) -> AccountSide:
        return side_of(self.sides, account)

    # -- the daily job ------------------------------------------------------------

    def stale_credentials(self, account: str = "") -> dict:
        """Read the account's report and act on it. ReportNotReady propagates: retry later."""
        side = self._side(account)
        rows = side.source.report()
        now = self.clock()
        side.refresh_owners()  # tags and paths, for the exclusions and the owners
        excluded = {row.user for row in rows if self._excluded(row.user, side.owners)}
        found = [f for f in evaluate(rows, self.settings.policy, now)
                 if f.iam_user not in excluded]
        roles = self._read_roles(side, account)
        role_found, role_excluded = self._role_findings(roles, now)
        notify = self.settings.mode == "notify"  # else report: the admins' one preview only
        with self.transaction() as session:
            synced = findings.sync(session, found, now, excluded, account)
            if roles is not None:  # not read: the role findings stay as they are
                role_synced = findings.sync(session, role_found, now, role_excluded, account,
                                            kinds=ROLE_KINDS)
                synced.opened += role_synced.opened
                synced.resolved += role_synced.resolved
            if notify:
                self._thank(session, [r for r in synced.resolved
                                      if r.owner and r.last_told_at], now)
        self._match_keys(account)
        role_tags = None if roles is None else {role.name: role.tags for role in roles}
        told = self._tell(now, account, role_tags) if notify \
            else self._preview(now, account, role_tags)
        escalated = self._escalate(now, account) if notify else 0
        disabled = self._auto_disable(now, account) \
            if notify and self.settings.auto_disable_after else 0
        return {"account": account or "own", "users": len(rows), "excluded": len(excluded),
                "findings": len(found),
                "mode": self.settings.mode, "new": len(synced.opened),
                "resolved": len(synced.resolved), "owners_told": told, "escalated": escalated,
                "auto_disabled": disabled, "aws_calls": getattr(side.source, "api_calls", None),
                "roles": "not read" if roles is None else len(roles),
                "role_findings": len(role_found)}

    def _read_roles(self, side: AccountSide, account: str) -> list[RoleFacts] | None:
        """The account's roles; None when it has no role source or IAM would not say (the
        credential findings go on; the role findings wait for the next run)."""
        if side.roles is None:
            return None
        try:
            return side.roles.roles()
        except ProviderError as exc:
            log.warning("account %s: could not read its IAM roles (%s); role findings are "
                        "checked at the next run", account or "own", exc)
            return None

    def _role_findings(self, roles: list[RoleFacts] | None, now: datetime
                       ) -> tuple[list, set[str]]:
        """The roles' findings, and the roles hygiene.exclude leaves alone."""
        if roles is None:
            return [], set()
        exclude = self.settings.exclude
        excluded = {role.name for role in roles
                    if exclude and exclude.covers(role.name, role.path, role.tags)}
        return [f for f in evaluate_roles(roles, self.settings.policy, now)
                if f.iam_user not in excluded], excluded

    def _excluded(self, iam_user: str, owners: Owners) -> bool:
        exclude = self.settings.exclude
        return bool(exclude) and iam_user != ROOT_USER and exclude.covers(
            iam_user, owners.path_of(iam_user), owners.tags_of(iam_user))

    def _match_keys(self, account: str) -> None:
        """Find the access key id of key findings: ListAccessKeys for at most
        KEY_MATCH_BUDGET users a run, the oldest findings first (an auto-disable needs the
        id), matched on CreateDate (the report carries no key ids). The rest wait for a
        later run, or for a click on Deactivate, which looks its key up itself; until then
        a message names the key by its slot and creation date."""
        source = self._side(account).source
        with self.transaction() as session:
            pending = [(r.id, r.iam_user, r.key_created)
                       for r in findings.unmatched_keys(session, account)]
        keys_of: dict[str, list] = {}
        matched: dict[int, str] = {}
        for finding_id, iam_user, created in pending:
            if iam_user not in keys_of:
                if len(keys_of) == KEY_MATCH_BUDGET:
                    continue
                try:
                    keys_of[iam_user] = source.access_keys(iam_user)
                except ProviderError as exc:  # matched at the next run
                    log.warning("could not list the access keys of %s: %s", iam_user, exc)
                    keys_of[iam_user] = []
            key = match_key(created, keys_of[iam_user])
            if key is not None:
                matched[finding_id] = key.key_id
        with self.transaction() as session:
            for finding_id, key_id in matched.items():
                findings.set_key_id(session, finding_id, key_id)

    def _tell(self, now: datetime, account: str,
              role_tags: dict[str, dict[str, str]] | None = None) -> int:
        """One message per owner listing all of their open findings, when any is due (more
        only past PER_MESSAGE findings: Slack allows 50 blocks in a message). A channel
        with more than CHANNEL_CARDS gets one summary and the full list as a CSV file."""
        by_owner = self._due_by_owner(now, account, role_tags)
        with self.transaction() as session:
            for owner, ids in by_owner.items():
                findings.mark_told(session, ids, owner, now)
                if is_channel(owner) and len(ids) > CHANNEL_CARDS:
                    messages.findings_list(session, owner, ids, now)
                    continue
                for start in range(0, len(ids), PER_MESSAGE):
                    messages.findings_digest(session, owner, ids[start:start + PER_MESSAGE],
                                             now)
        return len(by_owner)

    def _preview(self, now: datetime, account: str,
                 role_tags: dict[str, dict[str, str]] | None = None) -> int:
        """Report mode: what _tell would send, as one message to the admins; nobody is
        marked told, so switching to notify tells everyone then."""
        by_owner = self._due_by_owner(now, account, role_tags)
        if by_owner:
            with self.transaction() as session:
                messages.findings_preview(session, by_owner, now)
        return 0

    def _due_by_owner(self, now: datetime, account: str,
                      role_tags: dict[str, dict[str, str]] | None = None
                      ) -> dict[str, list[int]]:
        """Owner -> the due findings they are told about: an IAM user's by its tags, a
        role's by the role's tags as read in this run (`role_tags`; without them, the
        role's findings wait for a run that read them)."""
        with self.transaction() as session:
            due: dict[tuple[str, bool], list[int]] = {}
            for name, rows in findings.due(session, now, self.settings.reminder_interval,
                                           account).items():
                for row in rows:
                    due.setdefault((name, row.kind in ROLE_KINDS), []).append(row.id)
        by_owner: dict[str, list[int]] = {}
        emails: dict[str, str | None] = {}  # one Slack lookup per address per run
        for (name, is_role), ids in due.items():
            if is_role and (role_tags is None or name not in role_tags):
                continue  # the roles were not read this run
            try:
                owner = self.role_owner(role_tags[name], emails, account) if is_role \
                    else self.owner_of(name, emails, account)
            except LookupFailed as exc:  # never the admin channel by mistake
                log.warning("could not look up the owner of %s in Slack (%s); told at the "
                            "next run", name, exc)
                continue
            if owner is None:
                log.warning("%s has findings and no owner (no admin_channel set)", name)
                continue
            by_owner.setdefault(owner, []).extend(ids)
        return by_owner

    def owner_of(self, iam_user: str, emails: dict[str, str | None] | None = None,
                 account: str = "") -> str | None:
        """The Slack user in the `slack-user-id` tag, else the Slack user with the `email`
        tag's address, else the `owner` tag (a Slack user, channel or email: service users),
        else the admin channel. The root account always goes to the admin channel."""
        if iam_user == ROOT_USER:
            return self.catalog.admin_channel
        owners = self._side(account).owners
        return self._owner_by_tags(owners.tags_of(iam_user), emails, owners)

    def role_owner(self, tags: dict[str, str], emails: dict[str, str | None] | None = None,
                   account: str = "") -> str | None:
        """A role's owner, by the role's tags (keys lowercased), as owner_of by a user's."""
        return self._owner_by_tags(tags, emails, self._side(account).owners)

    def _owner_by_tags(self, tags: dict[str, str], emails: dict[str, str | None] | None,
                       owners: Owners) -> str | None:
        candidates = [tags.get(SLACK_TAG), tags.get(EMAIL_TAG), tags.get(OWNER_TAG)]
        emails = {} if emails is None else emails
        for value in filter(None, candidates):
            owner = self._slack_id(value, emails, owners)
            if owner is not None:
                return owner
        return self.catalog.admin_channel

    @staticmethod
    def _slack_id(value: str, emails: dict[str, str | None], owners: Owners) -> str | None:
        """A Slack user or channel id as is; an email looked up in Slack (LookupFailed
        when Slack cannot answer: "unknown" would send the finding to the wrong people)."""
        if SLACK_USER_ID.match(value) or SLACK_CHANNEL_ID.match(value):
            return value
        if "@" not in value:
            return None
        address = value.lower()
        if address not in emails:
            emails[address] = owners.user_for_email(address)
        return emails[address]

    def _thank(self, session, rows: list, now: datetime) -> None:
        """Tell owners what got fixed, and take the buttons off the messages that listed it."""
        by_owner: dict[str, list[int]] = {}
        for row in rows:
            by_owner.setdefault(row.owner, []).append(row.id)
        for owner, ids in by_owner.items():
            messages.findings_resolved(session, owner, ids, now)
        for channel, ts in {(r.message_channel, r.message_ts) for r in rows if r.message_ts}:
            messages.findings_updated(session, channel, ts, now)

    def _escalate(self, now: datetime, account: str) -> int:
        if not self.catalog.admin_channel:
            return 0
        with self.transaction() as session:
            rows = findings.escalation_due(session, now, self.settings.escalate_after, account)
            if rows:
                findings.mark_escalated(session, [row.id for row in rows], now)
                messages.findings_escalated(session, [row.id for row in rows], now)
        return len(rows)

    def _auto_disable(self, now: datetime, account: str) -> int:
        final = self.settings.final_warning
        with self.transaction() as session:
            due = findings.auto_disable_due(session, now, self.settings.auto_disable_after,
                                            final, account)
            # no disable without a delivered warning first: the countdown starts when
            # Slack has taken the warning (services/messages.after_sent)
            for row in due.warn:
                if not messages.final_warning_owed(session, row.id):
                    messages.key_final_warning(session, row, now + final, now)
        disabled = 0
        for row in due.disable:
            if row.kind == FindingKind.KEY_UNUSED and self._used_lately(row.key_id, now,
                                                                        account):
                continue  # used since the report: no longer unused, leave it to people
            target = KeyToDeactivate.of(row)
            try:
                disabled += self._deactivate_checked(target, SYSTEM)[0] == "deactivated"
            except ProviderError as exc:  # tried again at the next run
                log.error("could not auto-disable access key ...%s of %s: %s",
                          row.key_id[-4:], row.iam_user, exc)
        return disabled

    def _used_lately(self, key_id: str, now: datetime, account: str) -> bool:
        """The live re-check before an automatic deactivation: used within the unused age?"""
        try:
            last = self._side(account).source.key_last_used(key_id)
        except ProviderError as exc:
            log.warning("could not re-check access key ...%s: %s", key_id[-4:], exc)
            return True  # not sure: do not disable
        return last is not None and now - last < self.settings.policy.unused_credential_age

    # -- clicks -------------------------------------------------------------------

    def deactivate(self, finding_id: int, user_id: str, channel_id: str | None) -> str:
        """'Deactivate now': re-check the key live, set it Inactive, say what happened."""
        with self.transaction() as session:
            target = findings.key_to_deactivate(session, finding_id, user_id, channel_id)
        outcome, key_id = self._deactivate_checked(target, user_id)
        if outcome == "deactivated":
            return f"Done: access key ...{key_id[-4:]} of {target.iam_user} is Inactive."
        name = f"access key ...{key_id[-4:]}" if key_id else "that access key"
        return f"Nothing to do: {name} of {target.iam_user} is no longer active."

    def _deactivate_checked(self, target: KeyToDeactivate, by: str) -> tuple[str, str | None]:
        """Deactivate only if the key still exists, is the same key and is still Active
        (a key whose id was not looked up yet: the live key created at the report's time)."""
        source = self._side(target.account).source
        keys = source.access_keys(target.iam_user)
        if target.key_id is None:
            live = match_key(target.key_created, keys)
        else:
            live = next((k for k in keys if k.key_id == target.key_id), None)
        same = live is not None and match_key(target.key_created, [live]) is not None
        active = same and live.active
        if active:
            source.deactivate_key(target.iam_user, live.key_id)
        with self.transaction() as session:
            if active:
                if target.key_id is None:
                    findings.set_key_id(session, target.finding_id, live.key_id)
                findings.key_deactivated(session, target.finding_id, by, self.clock())
            else:
                findings.key_gone(session, target.finding_id, self.clock())
            row = findings.get_finding(session, target.finding_id)
        if row.message_ts:
            self.refresh_message(row.message_channel, row.message_ts)
        return ("deactivated" if active else "gone"), (live.key_id if live else target.key_id)

    def cap_session(self, finding_id: int, user_id: str, channel_id: str | None) -> str:
        """'Cap at 1h': re-read the role's maximum session live, lower it to
        hygiene.max_role_session if it is still above, say what happened."""
        with self.transaction() as session:
            target = findings.role_to_cap(session, finding_id, user_id, channel_id)
        source = self._side(target.account).roles
        if source is None:
            raise ProviderError("Roles are not looked at in this account.", retryable=False)
        cap = self.settings.policy.max_role_session
        seconds, said = int(cap.total_seconds()), format_duration(cap)
        live = source.max_session(target.role)
        if live is not None and live > seconds and not source.cap_session(target.role,
                                                                          seconds):
            live = None  # deleted between the two calls
        with self.transaction() as session:
            if live is None:
                why = "the role no longer exists (checked live)"
                row = findings.role_checked(session, finding_id, why, self.clock())
                answer = f"Nothing to do: role {target.role} no longer exists."
            elif live <= seconds:
                why = f"already capped at {format_duration(timedelta(seconds=live))} " \
                      "(checked live)"
                row = findings.role_checked(session, finding_id, why, self.clock())
                answer = (f"Nothing to do: role {target.role} already allows sessions of "
                          f"at most {format_duration(timedelta(seconds=live))}.")
            else:
                row = findings.session_capped(session, finding_id, user_id, said,
                                              self.clock())
                answer = f"Done: role {target.role} now allows sessions of up to {said}."
        if row.message_ts:
            self.refresh_message(row.message_channel, row.message_ts)
        return answer

    def refresh_message(self, channel: str, ts: str) -> None:
        """Re-render a findings message from the database, after a click or a change; one
        whose findings all moved to a newer reminder says so, without buttons."""
        with self.transaction() as session:
            messages.findings_updated(session, channel, ts, self.clock())

    # -- scheduling -------------------------------------------------------------------

    def run_if_due(self, name: str, every: timedelta, job: Callable[[], dict],
                   first_after_a_period: bool = False, account: str = "") -> dict | None:
        """Run `job` if it has not finished within `every` (in any process); None if not due.
        A run AWS or Slack could not finish is given back, and the next check tries again.
        A job of another account is due on its own, as "name:account"; when that account's
        role is refused, the admins hear once (services/account_faults.py)."""
        name = f"{name}:{account}" if account else name
        with self.transaction() as session:
            if not job_runs.claim(session, name, self.owner, self.clock(), every,
                                  first_after_a_period):
                return None
        try:
            result = job()
        except (ProviderError, LookupFailed) as exc:
            log.warning("%s: %s; trying again at the next check", name, exc)
            with self.transaction() as session:
                job_runs.release(session, name, self.owner)
                if isinstance(exc, AccountUnreachable):
                    account_faults.failed(session, exc.account, str(exc), self.clock())
            return {"retry_later": str(exc)}
        except BaseException:
            with self.transaction() as session:
                job_runs.release(session, name, self.owner)
            raise
        with self.transaction() as session:
            job_runs.finish(session, name, self.owner, self.clock())
            account_faults.answered(session, [account], self.clock())
        return result

    # -- weekly ---------------------------------------------------------------------

    def weekly_summary(self) -> dict:
        now = self.clock()
        with self.transaction() as session:
            summary = findings.summary(session, now, self.settings.summary_interval)
            if self.catalog.admin_channel:
                messages.findings_summary(session, self.settings.summary_interval
                                          .total_seconds(), now)
        return {"open": sum(summary.open_by_kind.values()), "new": summary.new,
                "resolved": summary.resolved}

    def _identity_center_deviations(self, granted: dict[tuple[str, str, str], set[str]]
                                    ) -> list[Deviation]:
        """Assignments of the catalog's permission sets, and members of its Identity Center
        groups, that no live grant explains."""
        held: dict[str, set[str]] = {}
        explained: dict[str, set[str]] = {}
        for resource in self.catalog.resources.values():
            if resource.kind is ResourceKind.SSO_PERMISSION_SET:
                for account in resource.accounts:
                    key = f"permission set {resource.target} in account {account}"
                    held[key] = self.standing.assigned(resource.target, account)
                    explained[key] = granted.get((resource.kind.value, resource.target,
                                                  account), set())
            elif resource.kind is ResourceKind.SSO_GROUP:
                key = f"Identity Center group {resource.target}"
                held[key] = self.standing.members(resource.target)
                explained[key] = granted.get((resource.kind.value, resource.target, ""), set())
        return unmanaged_member_deviations(held, explained, self.standing.user_name,
                                           holds="holds")

    def account_audit(self, account: str = "") -> dict:
        """An account's password policy against the baseline, enough administrators, and
        members of the bot's groups there that no grant explains (reported, never
        imported); with the bot's own account, Identity Center's assignments too."""
        source = self._side(account).source
        deviations = password_policy_deviations(source.password_policy(),
                                                self.settings.password_policy)
        deviations += administrator_deviations(source.administrators(),
                                               self.settings.min_administrators)
        groups = self.catalog.managed_groups(account)
        members = {group: source.group_members(group) for group in sorted(groups)}
        with self.transaction() as session:
            granted = grant_ops.granted_members(session, groups, account)
            identity_center = grant_ops.granted_identity_center(session)
        deviations += unmanaged_member_deviations(members, granted)
        if self.standing is not None and not account:
            deviations += self._identity_center_deviations(identity_center)
        with self.transaction() as session:
            if self.catalog.admin_channel:
                messages.account_audit(session, deviations, self.clock(), account)
        return {"account": account or "own", "deviations": [d.detail for d in deviations]}


