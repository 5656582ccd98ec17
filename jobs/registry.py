"""The named jobs: run by the scheduler, or once by `python bot.py run-job NAME`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from services.runner import AccessRunner


@dataclass
class JobContext:
    runner: AccessRunner
    refresh_directory: Callable[[], object]


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobContext], object]
    every: timedelta
    help: str


def _sweep(context: JobContext):
    return context.runner.sweep()


def _expire_requests(context: JobContext):
    return context.runner.expire_requests()


def _refresh_directory(context: JobContext):
    return context.refresh_directory()


PERIODIC = [
    Job("sweep", _sweep, timedelta(seconds=10),
        "revoke what expired (also while the bot was down), retry failed grants and "
        "revocations, send due expiry warnings, expire undecided requests, re-post stuck ones"),
    Job("refresh-iam-index", _refresh_directory, timedelta(minutes=10),
        "reload the Slack-to-IAM user index from GetAccountAuthorizationDetails"),
]
ON_DEMAND = [
    Job("expire-requests", _expire_requests, timedelta(0), "expire undecided requests"),
]
JOBS = {job.name: job for job in PERIODIC + ON_DEMAND}
