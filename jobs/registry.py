"""The named jobs: run by the scheduler, or once by `python bot.py run-job NAME`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from accessbot.services import inbox, outbox
from accessbot.services.catalog import Hygiene
from accessbot.services.hygiene_runner import HygieneRunner
from accessbot.services.runner import AccessRunner


@dataclass
class JobContext:
    runner: AccessRunner
    refresh_directory: Callable[[], object]
    hygiene: HygieneRunner | None = None


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobContext], object]
    every: timedelta
    help: str
    # Daily and weekly jobs: the scheduler checks every `every` and runs the job when its
    # period (from the config) has passed since it last finished, in any process.
    period: Callable[[Hygiene], timedelta] | None = None
    first_after_a_period: bool = False  # not at the very first start (a summary of nothing)


def _sweep(context: JobContext):
    return context.runner.sweep()


def _expire_requests(context: JobContext):
    return context.runner.expire_requests()


def _refresh_directory(context: JobContext):
    return context.refresh_directory()


KEEP_DELIVERED = timedelta(days=7)  # sent messages stay this long for looking into


def _prune(context: JobContext):
    with context.runner.transaction() as session:
        now = context.runner.clock()
        return {"messages": outbox.prune(session, now, KEEP_DELIVERED),
                "tasks": inbox.prune(session, now, KEEP_DELIVERED)}


def _stale_credentials(context: JobContext):
    return context.hygiene.stale_credentials()


def _summary(context: JobContext):
    return context.hygiene.weekly_summary()


def _account_audit(context: JobContext):
    return context.hygiene.account_audit()


CHECK = timedelta(minutes=5)  # how soon a report AWS was still generating is tried again

PERIODIC = [
    Job("sweep", _sweep, timedelta(seconds=10),
        "revoke what expired (also while the bot was down), retry failed grants and "
        "revocations, send due expiry warnings, expire undecided requests, re-post stuck ones"),
    Job("prune", _prune, timedelta(hours=1),
        "forget delivered outbox messages and finished inbox tasks after 7 days"),
    Job("refresh-iam-index", _refresh_directory, timedelta(minutes=10),
        "reload the Slack-to-IAM user index from GetAccountAuthorizationDetails"),
    Job("stale-credentials", _stale_credentials, CHECK,
        "read the IAM credential report, tell owners about stale credentials, escalate, "
        "auto-disable keys when configured (hygiene.interval, daily)",
        period=lambda hygiene: hygiene.interval),
    Job("hygiene-summary", _summary, CHECK,
        "post the weekly credential hygiene summary to the admin channel "
        "(hygiene.summary_interval)", period=lambda hygiene: hygiene.summary_interval,
        first_after_a_period=True),
    Job("account-audit", _account_audit, CHECK,
        "check the password policy, the number of administrators and members of managed "
        "groups without a grant (hygiene.audit_interval)",
        period=lambda hygiene: hygiene.audit_interval),
]
ON_DEMAND = [
    Job("expire-requests", _expire_requests, timedelta(0), "expire undecided requests"),
]
JOBS = {job.name: job for job in PERIODIC + ON_DEMAND}
