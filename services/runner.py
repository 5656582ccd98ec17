"""The work that spans transactions: submit, grant, extend, warn, revoke, and the sweep.

Order everywhere: commit the decision, call AWS or Slack, commit the result. The
database says what should be, so a crash at any point is repaired by the next sweep.
"""

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from models import AccessRequest, Grant, GrantStatus, RequestStatus, transaction
from services import extensions
from services import grants as grant_ops
from services import requests as request_ops
from services.audit import Action
from services.catalog import Catalog
from services.clock import Clock, utcnow
from services.ports import (
    AccessProvider,
    Directory,
    NotificationError,
    Notifier,
    Profiles,
    ProviderError,
    Timers,
)

log = logging.getLogger(__name__)

REVOKE_JOB = "revoke"
WARN_JOB = "warn"
ANNOUNCE_GRACE = timedelta(seconds=60)


@dataclass
class SweepReport:
    expired_requests: list[int] = field(default_factory=list)
    announced: list[int] = field(default_factory=list)
    granted: list[int] = field(default_factory=list)
    warned: list[int] = field(default_factory=list)
    revoked: list[int] = field(default_factory=list)


def deliver(send: Callable, *args) -> None:
    """Messages are best effort: the database already holds the truth."""
    try:
        send(*args)
    except NotificationError as exc:
        log.error("%s failed: %s", getattr(send, "__name__", send), exc)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class AccessRunner:
    def __init__(self, sessions: Callable[[], Session], catalog: Catalog,
                 provider: AccessProvider, directory: Directory, profiles: Profiles,
                 notifier: Notifier, timers: Timers | None = None, clock: Clock = utcnow,
                 owner: str | None = None, defer: Callable[..., object] | None = None):
        self.sessions = sessions
        self.catalog = catalog
        self.provider = provider
        self.directory = directory
        self.profiles = profiles
        self.notifier = notifier
        self.timers = timers
        self.clock = clock
        self.owner = owner or worker_id()
        # where fire-and-forget messages are sent from, so that a slow Slack never holds
        # a revocation worker; None sends them in the calling thread
        self.defer = defer

    def transaction(self):
        return transaction(self.sessions)

    # -- requests ---------------------------------------------------------------

    def announce(self, request_id: int) -> bool:
        """Find the requester's IAM user, then post the request to every approver, once."""
        with self.transaction() as session:
            request = request_ops.claim_announcement(session, request_id, self.clock())
            if request is None:
                return False
            posted = {m.destination for m in request.messages}
            iam_user = request.iam_user
        if iam_user is None:
            try:
                iam_user = self._find_iam_user(request.requester_id)
            except ProviderError as exc:  # AWS unreachable: the sweep tries again
                log.warning("request #%s: IAM user lookup failed: %s", request_id, exc)
                with self.transaction() as session:
                    request_ops.release_announcement(session, request_id)
                return False
            if iam_user is None:
                why = ("you have no IAM user that accessbot can match to your Slack account. "
                       f"Ask an AWS admin to tag your IAM user with slack-user-id="
                       f"{request.requester_id} (or email=<your Slack email>).")
                with self.transaction() as session:
                    failed = request_ops.fail_request(session, request_id, why, self.clock())
                if failed:
                    self._notify(self.notifier.request_failed, request, why)
                return False
            with self.transaction() as session:
                request_ops.set_iam_user(session, request_id, iam_user)
            request.iam_user = iam_user
        resource = self.catalog.resources.get(request.resource)
        destinations = [self.catalog.approval_channel] if self.catalog.approval_channel else []
        destinations += [a for a in resource.approvers if a != request.requester_id] if resource \
            else []
        complete = True
        for destination in destinations:
            if destination in posted:
                continue
            try:
                channel, ts = self.notifier.post_request(request, destination)
            except NotificationError as exc:
                log.error("request #%s: could not post to %s: %s", request_id, destination, exc)
                complete = False
                continue
            with self.transaction() as session:
                request_ops.record_message(session, request_id, destination, channel, ts)
        with self.transaction() as session:
            if not complete:  # let the next sweep post what is missing
                request_ops.release_announcement(session, request_id)
                return False
            still_pending = request_ops.mark_announced(session, request_id, self.clock())
        if still_pending:
            self._notify(self.notifier.request_submitted, request)
        else:  # decided or expired while being posted: the later copies show old buttons
            self._update_copies(request_id)
        return True

    def refresh_messages(self, request_id: int) -> None:
        """Re-render every posted copy of a request after its status changed."""
        request = self._update_copies(request_id)
        if request.status in (RequestStatus.DENIED, RequestStatus.EXPIRED):
            self._notify(self.notifier.request_decided, request)

    def _update_copies(self, request_id: int) -> AccessRequest:
        with self.transaction() as session:
            request = request_ops.get_request(session, request_id)
            messages = list(request.messages)
        for message in messages:
            self._notify(self.notifier.update_request, request, message)
        return request

    def expire_requests(self) -> list[int]:
        with self.transaction() as session:
            expired = request_ops.expire_overdue(session, self.clock())
        for request_id in expired:
            self.refresh_messages(request_id)
        return expired

    # -- grants -----------------------------------------------------------------

    def apply_grant(self, grant_id: int) -> Grant | None:
        """Put an approved grant (or an extended role grant) in place in AWS; the sweep retries."""
        with self.transaction() as session:
            grant = grant_ops.claim_to_grant(session, grant_id, self.owner, self.clock())
        if grant is None:
            return None
        extended = grant.granted_at is not None  # applied before: IAM learns the new expiry
        try:
            role_arn = self.provider.grant(grant_ops.spec_of(grant))
        except ProviderError as exc:
            return self._grant_failed(grant, exc)
        with self.transaction() as session:
            grant = grant_ops.finish_grant(session, grant_id, self.owner, self.clock(), role_arn)
        if grant is None:
            return None
        self._schedule(grant)
        if extended:
            self._tell_extended(grant)
        else:
            self._tell_granted(grant)
        return grant

    def extend_grant(self, grant_id: int) -> Grant | None:
        """Carry out an approved extension: new timers, IAM's new expiry (roles), the DM."""
        with self.transaction() as session:
            grant = grant_ops.get_grant(session, grant_id)
        if grant.expires_at <= self.clock():
            return None  # ended meanwhile ("I'm done"): the revoker has it
        self._schedule(grant)  # the revoke timer moves now, whatever AWS says
        if grant.status is GrantStatus.PENDING:  # a role: see services/extensions.py
            return self.apply_grant(grant_id)
        if grant.status is not GrantStatus.ACTIVE:
            return None
        self._tell_extended(grant)
        return grant

    def revoke_grant(self, grant_id: int) -> Grant | None:
        """Take an expired grant away; 'already gone' counts as done."""
        with self.transaction() as session:
            grant = grant_ops.claim_to_revoke(session, grant_id, self.owner, self.clock())
        if grant is None:
            return None
        try:
            self.provider.revoke(grant_ops.spec_of(grant))
        except ProviderError as exc:
            self._retry_later(grant, exc, Action.REVOKE_RETRY, "revoke")
            return None
        with self.transaction() as session:
            done = grant_ops.finish_revoke(session, grant_id, self.owner, self.clock())
        if done is not None:
            if self.timers:
                self.timers.cancel(WARN_JOB, grant_id)
            self._notify(self.notifier.grant_ended, done)
        return done

    def warn(self, grant_id: int) -> bool:
        with self.transaction() as session:
            grant = grant_ops.claim_warning(session, grant_id, self.clock())
        if grant is None:
            return False
        self._notify(self.notifier.grant_expiring, grant)
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
            to_announce = request_ops.unannounced(session, now - ANNOUNCE_GRACE)
            to_revoke = grant_ops.due_to_revoke(session, now)
            to_grant = grant_ops.due_to_grant(session, now)
            to_warn = grant_ops.due_to_warn(session, now)
        report.revoked = [g for g in to_revoke if self.revoke_grant(g)]
        report.granted = [g for g in to_grant if self.apply_grant(g)]
        report.warned = [g for g in to_warn if self.warn(g)]
        report.announced = [r for r in to_announce if self.announce(r)]
        return report

    # -- helpers ----------------------------------------------------------------

    def _find_iam_user(self, slack_user_id: str) -> str | None:
        iam_user = self.directory.iam_user_for(slack_user_id, None)
        if iam_user is not None:
            return iam_user
        try:
            email = self.profiles.email_of(slack_user_id)
        except NotificationError as exc:
            log.warning("could not read the Slack profile of %s: %s", slack_user_id, exc)
            email = None
        return self.directory.iam_user_for(slack_user_id, email) if email else None

    def _tell_granted(self, grant: Grant) -> None:
        try:
            channel, ts = self.notifier.grant_active(grant)
        except NotificationError as exc:
            log.error("grant #%s: could not tell the requester: %s", grant.id, exc)
        else:
            with self.transaction() as session:
                grant_ops.record_dm(session, grant.id, channel, ts)

    def _tell_extended(self, grant: Grant) -> None:
        with self.transaction() as session:
            request = extensions.approved_extension(session, grant.id)
        if request is not None:
            self._notify(self.notifier.grant_extended, grant, request)

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
            self._notify(self.notifier.grant_failed, failed)
            self._notify(self.notifier.admin_alert,
                         f"Could not grant {failed.resource} to <@{failed.requester_id}> "
                         f"(grant #{failed.id}): {exc}")
        return None

    def _retry_later(self, grant: Grant, exc: ProviderError, action: Action, what: str) -> None:
        with self.transaction() as session:
            failure = grant_ops.record_failure(session, grant.id, self.owner, self.clock(),
                                               str(exc), action)
        log.warning("grant #%s: %s failed (%s); will retry", grant.id, what, exc)
        if failure and failure.alert:
            self._notify(self.notifier.admin_alert,
                         f":rotating_light: Could not {what} {grant.resource} for "
                         f"<@{grant.requester_id}> (IAM user {grant.iam_user}, grant #{grant.id}) "
                         f"after {failure.attempts} attempts: {exc}. Still retrying.")

    def _schedule(self, grant: Grant) -> None:
        if self.timers is None:
            return
        self.timers.schedule(REVOKE_JOB, grant.id, grant.expires_at)
        if grant.warn_at and grant.warned_at is None and grant.status is GrantStatus.ACTIVE:
            self.timers.schedule(WARN_JOB, grant.id, grant.warn_at)

    def _notify(self, send: Callable, *args) -> None:
        if self.defer is not None:
            self.defer(deliver, send, *args)
        else:
            deliver(send, *args)

