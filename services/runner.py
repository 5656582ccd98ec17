"""The work that spans transactions: submit, grant, extend, warn, revoke, and the sweep.

Order everywhere: commit the decision, call AWS, commit the result together with the
messages it owes (services/messages.py: rows the sender delivers). The database says
what should be, so a crash at any point is repaired by the next sweep.
"""

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from accessbot.models import Grant, GrantStatus, batched_rows, transaction
from accessbot.services import (
    account_faults,
    break_glass,
    extensions,
    lifecycle,
    messages,
    metrics,
    people,
)
from accessbot.services import grants as grant_ops
from accessbot.services import requests as request_ops
from accessbot.services.audit import Action
from accessbot.services.catalog import SSO_KINDS, Catalog, Resource
from accessbot.services.clock import Clock, utcnow
from accessbot.services.people import UserGroups
from accessbot.services.ports import (
    AccessProvider,
    AccountUnreachable,
    Directory,
    GrantSpec,
    LookupFailed,
    PartlyDone,
    Profiles,
    ProviderError,
    Timers,
)

log = logging.getLogger(__name__)

NO_SSO_USER = ("you have no IAM Identity Center user that accessbot can match to your Slack "
               "account: its email (or user name) must be the email of your Slack profile. "
               "Ask an Identity Center admin to check it.")
REVOKE_JOB = "revoke"
WARN_JOB = "warn"
GRANT_JOB = "grant"  # a failed grant's next attempt
ANNOUNCE_GRACE = timedelta(seconds=60)
LOOKUP_RETRY = timedelta(seconds=5)  # a request whose requester could not be looked up


@dataclass
class SweepReport:
    expired_requests: list[int] = field(default_factory=list)
    announced: list[int] = field(default_factory=list)
    granted: list[int] = field(default_factory=list)
    warned: list[int] = field(default_factory=list)
    revoked: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class AccessRunner:
    def __init__(self, sessions: Callable[[], Session], catalog: Catalog,
                 provider: AccessProvider, directory: Directory, profiles: Profiles,
                 timers: Timers | None = None, clock: Clock = utcnow,
                 owner: str | None = None, sso_directory: Directory | None = None,
                 account_directories: dict[str, Directory] | None = None,
                 groups: UserGroups | None = None,
                 revoking: Callable[[], AbstractContextManager] = nullcontext):
        self.sessions = sessions
        self.catalog = catalog
        self.provider = provider
        self.directory = directory
        self.sso_directory = sso_directory  # Identity Center users, for the sso_ kinds
        # IAM users of the other accounts (account id -> directory) for IAM kinds there
        self.account_directories = account_directories or {}
        self.profiles = profiles
        self.timers = timers
        self.clock = clock
        self.owner = owner or worker_id()
        self.groups = groups  # Slack user groups among approvers and admins
        self.revoking = revoking  # around each group of revocations (RevocationsFirst)

    def transaction(self):
        return transaction(self.sessions)

    # -- requests ---------------------------------------------------------------

    def announce(self, request_id: int) -> bool:
        """Find the requester's IAM user, then owe the request to every approver, once."""
        with self.transaction() as session:
            request = request_ops.claim_announcement(session, request_id, self.clock())
            if request is None:
                return False
            iam_user = request.iam_user
        resource = self.catalog.resources.get(request.resource)
        identity_center = resource is not None and resource.kind in SSO_KINDS
        if iam_user is None:
            try:
                iam_user = (self._find_sso_user(request.requester_id) if identity_center
                            else self._find_iam_user(request.requester_id, resource))
            except (ProviderError, LookupFailed) as exc:  # no answer yet: the sweep retries
                log.warning("request #%s: user lookup failed: %s; will retry",
                            request_id, exc)
                with self.transaction() as session:
                    request_ops.release_announcement(session, request_id,
                                                     self.clock() + LOOKUP_RETRY)
                    if isinstance(exc, AccountUnreachable):  # the admins hear once
                        account_faults.failed(session, exc.account, str(exc), self.clock())
                return False
            if iam_user is None:
                why = (NO_SSO_USER if identity_center else
                       "you have no IAM user that accessbot can match to your Slack account. "
                       f"Ask an AWS admin to tag your IAM user with slack-user-id="
                       f"{request.requester_id} (or email=<your Slack email>).")
                with self.transaction() as session:
                    request_ops.fail_request(session, request_id, why, self.clock())
                return False
        try:
            destinations = self._destinations(resource, request.requester_id)
        except LookupFailed as exc:  # a user group never read, and Slack not answering
            log.warning("request #%s: approvers' user groups unknown: %s; will retry",
                        request_id, exc)
            with self.transaction() as session:
                request_ops.release_announcement(session, request_id,
                                                 self.clock() + LOOKUP_RETRY)
            return False
        with self.transaction() as session:
            if resource is not None and not identity_center:  # its account answered
                account_faults.answered(session, resource.accounts, self.clock())
            granted = None
            request = request_ops.mark_announced(session, request_id, iam_user, self.clock())
            if request is not None:
                if resource is not None and break_glass.grants_itself(request, resource):
                    granted = break_glass.decide(session, self.catalog, self.groups, request,
                                                 resource, self.clock())
                else:
                    messages.request_copies(session, request, destinations, self.clock())
                    messages.request_submitted(session, request, self.clock())
                    lifecycle.schedule_reminders(session, request, resource, self.clock())
        if granted is not None:  # approval: none or break-glass: put in place now
            self.apply_grant(granted.id)
        return True

    def remind(self) -> list[int]:
        """Remind the approvers of pending requests that are due a reminder."""
        with self.transaction() as session:
            sent = lifecycle.send_due_reminders(session, self.catalog, self.groups,
                                                self.clock())
        return [reminder.request_id for reminder in sent]

    def _destinations(self, resource: Resource | None, requester_id: str) -> list[str]:
        """The resource's approval channel, then each approver (a user group's members
        each get a copy), never the requester."""
        if resource is None:
            return [self.catalog.approval_channel] if self.catalog.approval_channel else []
        channel = self.catalog.approval_channel_for(resource)
        return ([channel] if channel else []) + [
            a for a in people.in_order(resource.approvers, self.groups) if a != requester_id]

    def expire_requests(self) -> list[int]:
        with self.transaction() as session:
            return request_ops.expire_overdue(session, self.clock())

    # -- grants -----------------------------------------------------------------

    def apply_grant(self, grant_id: int) -> Grant | None:
        """Put an approved grant (or an extended role grant) in place in AWS; the sweep retries."""
        with self.transaction() as session:
            grant = grant_ops.claim_to_grant(session, grant_id, self.owner, self.clock())
        if grant is None:
            return None
        extended = grant.granted_at is not None  # applied before: IAM learns the new expiry
        try:
            role_arn = self.provider.grant(self._spec(grant))
        except ProviderError as exc:
            return self._grant_failed(grant, exc)
        with self.transaction() as session:
            grant = grant_ops.finish_grant(session, grant_id, self.owner, self.clock(), role_arn)
            if grant is None:
                return None
            metrics.GRANTS.labels("extended" if extended else "granted").inc()
            account_faults.answered(session, _assumed_accounts([grant]), self.clock())
            if extended:
                self._owe_extended(session, grant)
            else:
                messages.grant_active(session, grant, self.clock())
        self._schedule(grant)
        return grant

    def extend_grant(self, grant_id: int) -> Grant | None:
        """Carry out an approved extension: new timers, IAM's new expiry (roles), the DM."""
        with self.transaction() as session:
            grant = grant_ops.get_grant(session, grant_id)
            if grant.expires_at <= self.clock():
                return None  # ended meanwhile ("I'm done"): the revoker has it
            if grant.status is GrantStatus.ACTIVE:
                self._owe_extended(session, grant)
        self._schedule(grant)  # the revoke timer moves now, whatever AWS says
        if grant.status is GrantStatus.PENDING:  # a role: see services/extensions.py
            return self.apply_grant(grant_id)
        return grant if grant.status is GrantStatus.ACTIVE else None

    def revoke_grant(self, grant_id: int) -> Grant | None:
        """Take an expired grant away; 'already gone' counts as done."""
        done = self.revoke_grants([grant_id])
        return done[0] if done else None

    def revoke_grants(self, grant_ids: Sequence[int],
                      calls: Callable[..., Future] | None = None) -> list[Grant]:
        """Take expired grants away, many at once: leased in one transaction, AWS called
        side by side on `calls` (a pool's submit; without one, in turn), and each group of
        calls that has finished recorded in one transaction. Returns the grants revoked."""
        if not grant_ids:  # a sweep that found none: no transaction
            return []
        with self.transaction() as session:
            claimed = grant_ops.claim_all_to_revoke(session, grant_ids, self.owner,
                                                    self.clock())
        revoked: list[Grant] = []
        with self.revoking() if claimed else nullcontext():
            for finished in _as_they_finish(self.provider.revoke, claimed, self._spec, calls):
                revoked += self._record_revoked(finished)
        if self.timers:
            for grant in revoked:
                self.timers.cancel(WARN_JOB, grant.id)
        return revoked

    def _record_revoked(self, finished: list[tuple[Grant, ProviderError | None]]
                        ) -> list[Grant]:
        """One group of finished AWS calls: the revoked recorded in one transaction (with
        the messages they owe), the refused retried later."""
        for grant, exc in finished:
            if exc is not None:
                self._retry_later(grant, exc, Action.REVOKE_RETRY, "revoke")
        ok = [grant.id for grant, exc in finished if exc is None]
        if not ok:
            return []
        with self.transaction() as session, batched_rows(session):
            done = grant_ops.finish_all_revoked(session, ok, self.owner, self.clock(),
                                                self._activity_after())
            account_faults.answered(session, _assumed_accounts(done), self.clock())
            for grant in done:
                messages.grant_ended(session, grant, self.clock())
                metrics.REVOCATIONS.labels("revoked").inc()
                metrics.REVOCATION_LAG.observe(
                    max(0.0, (grant.revoked_at - grant.expires_at).total_seconds()))
        return done

    def warn(self, grant_id: int) -> bool:
        """The expiry warning: marked and owed in one transaction, so it is never lost."""
        with self.transaction() as session:
            grant = grant_ops.claim_warning(session, grant_id, self.clock())
            if grant is None:
                return False
            messages.grant_expiring(session, grant, self.clock())
        return True

    def schedule_live_grants(self) -> int:
        """Give every live grant an exact-time timer in this process (at start-up)."""
        with self.transaction() as session:
            live = grant_ops.live_grants(session)
        for grant in live:
            self._schedule(grant)
        return len(live)

    def sweep(self) -> SweepReport:
        """The safety net: finish whatever timers, crashes or outages left undone."""
        report = SweepReport(expired_requests=self.expire_requests())
        now = self.clock()
        with self.transaction() as session:
            to_announce = request_ops.unannounced(session, now, now - ANNOUNCE_GRACE)
            to_revoke = grant_ops.due_to_revoke(session, now)
            to_grant = grant_ops.due_to_grant(session, now)
            to_warn = grant_ops.due_to_warn(session, now)
        report.revoked = [g.id for g in self.revoke_grants(to_revoke)]
        report.granted = [g for g in to_grant if self.apply_grant(g)]
        report.warned = [g for g in to_warn if self.warn(g)]
        report.announced = [r for r in to_announce if self.announce(r)]
        report.reminded = self.remind()
        return report

    # -- helpers ----------------------------------------------------------------

    def _find_iam_user(self, slack_user_id: str, resource: Resource | None = None) -> str | None:
        """The IAM user for a Slack user (in the resource's account), or None when definitely
        there is none.

        Raises ProviderError or LookupFailed when AWS or Slack could not answer: that
        is no answer, and the request is retried rather than failed."""
        directory = self.directory
        if resource is not None and resource.accounts:
            directory = self.account_directories.get(resource.accounts[0])
            if directory is None:
                raise LookupFailed(f"account {resource.accounts[0]} has no IAM user index")
        iam_user = directory.iam_user_for(slack_user_id, None)
        if iam_user is not None:
            return iam_user
        email = self.profiles.email_of(slack_user_id)
        return directory.iam_user_for(slack_user_id, email) if email else None

    def _activity_after(self) -> timedelta | None:
        """How long after a grant ends its activity is looked up (None: it is not)."""
        cloudtrail = self.catalog.cloudtrail
        return cloudtrail.delay if cloudtrail.enabled else None

    def _spec(self, grant: Grant) -> GrantSpec:
        return grant_ops.spec_of(grant, self.catalog.resources.get(grant.resource))

    def _find_sso_user(self, slack_user_id: str) -> str | None:
        """The Identity Center user whose email (or user name) is the Slack profile's email."""
        if self.sso_directory is None:
            raise LookupFailed("IAM Identity Center is not set up in this bot")
        email = self.profiles.email_of(slack_user_id)
        return self.sso_directory.iam_user_for(slack_user_id, email) if email else None

    def _owe_extended(self, session: Session, grant: Grant) -> None:
        request = extensions.approved_extension(session, grant.id)
        if request is not None:
            messages.grant_extended(session, grant, request, self.clock())

    def _grant_failed(self, grant: Grant, exc: ProviderError) -> Grant | None:
        # An extended grant is in place already, under its old expiry: failing it would
        # leave that access without a revocation. It keeps retrying (and alerts the admins)
        # until it is revoked at its new expiry like any other grant.
        if exc.retryable or grant.granted_at is not None:
            self._retry_later(grant, exc, Action.GRANT_RETRY, "grant")
            return None
        with self.transaction() as session:
            failed = grant_ops.fail_grant(session, grant.id, self.owner, self.clock(), str(exc))
            if failed is not None:
                metrics.GRANTS.labels("failed").inc()
                messages.grant_failed(session, failed, self.clock())
                messages.admin_alert(session, f"Could not grant {failed.resource} to "
                                     f"<@{failed.requester_id}> (grant #{failed.id}): {exc}",
                                     self.clock())
        return None

    def _retry_later(self, grant: Grant, exc: ProviderError, action: Action, what: str) -> None:
        unreachable = isinstance(exc, AccountUnreachable)  # the admins hear once per account
        with self.transaction() as session:
            failure = grant_ops.record_failure(session, grant.id, self.owner, self.clock(),
                                               str(exc), action)
            if failure and unreachable:
                account_faults.failed(session, exc.account, str(exc), self.clock())
            if failure and failure.attempts == 1 and isinstance(exc, PartlyDone) \
                    and what == "grant":  # the requester hears each account's result once
                messages.grant_partly(session, grant, exc.done, exc.failed, self.clock())
            if failure and failure.alert and not unreachable:
                messages.admin_alert(
                    session, f":rotating_light: Could not {what} {grant.resource} for "
                    f"<@{grant.requester_id}> (IAM user {grant.iam_user}, grant #{grant.id}) "
                    f"after {failure.attempts} attempts: {exc}. Still retrying.", self.clock())
        (metrics.GRANTS if what == "grant" else metrics.REVOCATIONS).labels("retried").inc()
        log.warning("grant #%s: %s failed (%s); will retry", grant.id, what, exc,
                    extra={"grant_id": grant.id, "request_id": grant.request_id})
        if failure and self.timers is not None:  # on time, not at the next sweep's turn
            self.timers.schedule(GRANT_JOB if what == "grant" else REVOKE_JOB, grant.id,
                                 failure.retry_at)

    def _schedule(self, grant: Grant) -> None:
        if self.timers is None:
            return
        self.timers.schedule(REVOKE_JOB, grant.id, grant.expires_at)
        if grant.warn_at and grant.warned_at is None and grant.status is GrantStatus.ACTIVE:
            self.timers.schedule(WARN_JOB, grant.id, grant.warn_at)


def _assumed_accounts(grants: list[Grant]) -> set[str]:
    """The accounts whose role these IAM grants went through (none: the bot's own)."""
    return {g.accounts for g in grants if g.accounts and g.kind not in SSO_KINDS}


def _as_they_finish(call: Callable[[GrantSpec], object], grants: list[Grant],
                    spec: Callable[[Grant], GrantSpec], calls: Callable[..., Future] | None
                    ) -> Iterator[list[tuple[Grant, ProviderError | None]]]:
    """Call AWS for each grant; yield (grant, error) for the calls done since the last yield.

    An error that is not a ProviderError is a bug: it is logged, and the grant left leased
    (the sweep takes it up again when its lease runs out)."""
    def outcome(grant: Grant, run: Callable[[], object]) -> tuple[Grant, ProviderError | None]:
        try:
            run()
        except ProviderError as exc:
            return grant, exc
        return grant, None

    if calls is None or len(grants) < 2:
        for grant in grants:
            yield [outcome(grant, lambda g=grant: call(spec(g)))]
        return
    pending = {calls(call, spec(grant)): grant for grant in grants}
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        finished = []
        for future in done:
            grant = pending.pop(future)
            try:
                finished.append(outcome(grant, future.result))
            except Exception:  # a bug: logged by the pool; the lease runs out
                log.exception("grant #%s: revoking failed unexpectedly", grant.id)
        yield finished
