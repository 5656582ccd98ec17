"""The named jobs: run by the scheduler, or once by `python bot.py run-job NAME`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from accessbot.services import audit_chain, break_glass, inbox, outbox
from accessbot.services.audit_export import AuditArchiver
from accessbot.services.catalog import Hygiene
from accessbot.services.grant_activity import GrantActivity
from accessbot.services.hygiene_runner import HygieneRunner
from accessbot.services.review_runner import ReviewRunner
from accessbot.services.runner import AccessRunner


@dataclass
class JobContext:
    runner: AccessRunner
    refresh_directory: Callable[[], object]
    hygiene: HygieneRunner | None = None
    review: ReviewRunner | None = None
    activity: GrantActivity | None = None  # None: cloudtrail.enabled is false
    audit_archiver: AuditArchiver | None = None  # with audit.s3_bucket
    user_groups: object | None = None  # handlers.usergroups.SlackUserGroups (refresh())


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[..., object]  # run(context), or run(context, account) when per_account
    every: timedelta
    help: str
    # Daily and weekly jobs: the scheduler checks every `every` and runs the job when its
    # period (from the config) has passed since it last finished, in any process.
    period: Callable[[Hygiene], timedelta] | None = None
    first_after_a_period: bool = False  # not at the very first start (a summary of nothing)
    # run in the bot's own account and in each of `accounts:` (run(context, account)),
    # each account's run due on its own
    per_account: bool = False
    # what `run-job` does instead of the scheduled run, when the two differ
    now: Callable[["JobContext"], object] | None = None
    # whether the worker schedules a job with a period (default: with hygiene.enabled)
    scheduled: Callable[[JobContext], bool] | None = None


def run_due(job: Job, context: JobContext, every: timedelta) -> object | None:
    """A job with a period, if it has not finished within `every` (timedelta(0): now, unless
    another process is running it); None when nothing ran. A per-account job's result is
    by account ("own" for the bot's own)."""
    hygiene = context.hygiene
    if not job.per_account:
        return hygiene.run_if_due(job.name, every, lambda: job.run(context),
                                  job.first_after_a_period)
    results = {account or "own": hygiene.run_if_due(
        job.name, every, lambda a=account: job.run(context, a), job.first_after_a_period,
        account) for account in hygiene.sides}
    return {account: r for account, r in results.items() if r is not None} or None


def _sweep(context: JobContext):
    return context.runner.sweep()


def _expire_requests(context: JobContext):
    return context.runner.expire_requests()


def _refresh_directory(context: JobContext):
    return context.refresh_directory()


def _refresh_user_groups(context: JobContext):
    if context.user_groups is None:
        return {"skipped": "no user groups in this process"}
    return context.user_groups.refresh()


KEEP_DELIVERED = timedelta(days=7)  # sent messages stay this long for looking into


def _prune(context: JobContext):
    with context.runner.transaction() as session:
        now = context.runner.clock()
        return {"messages": outbox.prune(session, now, KEEP_DELIVERED),
                "tasks": inbox.prune(session, now, KEEP_DELIVERED)}


def _stale_credentials(context: JobContext, account: str):
    return context.hygiene.stale_credentials(account)


def _summary(context: JobContext):
    return context.hygiene.weekly_summary()


def _account_audit(context: JobContext, account: str):
    return context.hygiene.account_audit(account)


def _access_review(context: JobContext, every: timedelta | None = None):
    """In each account: a review when review.interval has passed since the last (or
    `every`: timedelta(0) is now), else its reminders, escalation and closing."""
    review = context.review
    if review is None or (every is None and not review.settings.enabled):
        return None
    results = {}
    for account in review.accounts():
        started = context.hygiene.run_if_due(
            "access-review", review.settings.interval if every is None else every,
            lambda a=account: review.review(a), account=account)
        results[account or "own"] = started if started is not None \
            else review.follow_up(account)
    return results


def _access_review_now(context: JobContext):
    return _access_review(context, timedelta(0))


def _grant_activity(context: JobContext):
    return context.activity.run() if context.activity else None


def _break_glass_reviews(context: JobContext):
    runner = context.runner
    with runner.transaction() as session:
        return break_glass.follow_up(session, runner.catalog, runner.groups, runner.clock())


def _seal_audit(context: JobContext):
    return audit_chain.seal_pending(context.runner.transaction)


def _audit_s3_export(context: JobContext):
    if context.audit_archiver is None:
        return {"skipped": "audit.s3_bucket is not set"}
    return context.audit_archiver.export_days()


CHECK = timedelta(minutes=5)  # how soon a report AWS was still generating is tried again

PERIODIC = [
    Job("sweep", _sweep, timedelta(seconds=10),
        "revoke what expired (also while the bot was down), retry failed grants and "
        "revocations, send due expiry warnings, expire undecided requests, re-post stuck ones"),
    Job("prune", _prune, timedelta(hours=1),
        "forget delivered outbox messages and finished inbox tasks after 7 days"),
    Job("refresh-iam-index", _refresh_directory, timedelta(minutes=10),
        "reload the Slack-to-IAM user index from GetAccountAuthorizationDetails"),
    Job("refresh-user-groups", _refresh_user_groups, timedelta(minutes=10),
        "read again the members of the Slack user groups among approvers and admins "
        "(usergroups.users.list)"),
    Job("stale-credentials", _stale_credentials, CHECK,
        "read the IAM credential report and the roles, tell owners about stale credentials "
        "and risky roles, escalate, "
        "auto-disable keys when configured (hygiene.interval, daily); in every account",
        period=lambda hygiene: hygiene.interval, per_account=True),
    Job("hygiene-summary", _summary, CHECK,
        "post the weekly credential hygiene summary to the admin channel "
        "(hygiene.summary_interval)", period=lambda hygiene: hygiene.summary_interval,
        first_after_a_period=True),
    Job("account-audit", _account_audit, CHECK,
        "check the password policy, the number of administrators and members of managed "
        "groups without a grant (hygiene.audit_interval); in every account",
        period=lambda hygiene: hygiene.audit_interval, per_account=True),
    Job("access-review", _access_review, timedelta(hours=1),
        "ask approvers (or owners) to keep or remove standing access outside accessbot's "
        "grants (review.interval, 30 days); every hour, remind, escalate and close; in every "
        "account with catalog groups or roles", now=_access_review_now),
    Job("grant-activity", _grant_activity, timedelta(minutes=1),
        "look up in CloudTrail what each ended grant was used for (cloudtrail.delay after "
        "it ended) and post the summary in the request's thread and to the requester"),
    Job("break-glass-reviews", _break_glass_reviews, timedelta(minutes=1),
        "remind the approvers of a break-glass grant nobody has reviewed (half way to "
        "break_glass_review_within), and tell the admin channel once when it is overdue"),
    Job("seal-audit", _seal_audit, timedelta(seconds=15),
        "extend the audit trail's hash chain with the rows recorded since"),
    # hourly, so that a day is uploaded within the hour after it is complete and sealed
    Job("audit-s3-export", _audit_s3_export, CHECK,
        "upload each complete UTC day of the audit trail to audit.s3_bucket, once "
        "(days missed while the bot was down too)", period=lambda _: timedelta(hours=1),
        scheduled=lambda context: context.audit_archiver is not None),
]
ON_DEMAND = [
    Job("expire-requests", _expire_requests, timedelta(0), "expire undecided requests"),
]
JOBS = {job.name: job for job in PERIODIC + ON_DEMAND}
