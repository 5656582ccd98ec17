"""The worker process's composition: the components behind the acknowledgements, the
scheduler, and the loop that runs what the web process handed over (see jobs/worker.py)."""

import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from accessbot.aws import (
    ByKind,
    IamAccess,
    IamByAccount,
    IamCredentials,
    IamUserIndex,
    make_iam_client,
    make_identity_center,
)
from accessbot.aws.access_advisor import AccessAdvisor
from accessbot.aws.accounts import AccountCredentials, assumed_session
from accessbot.aws.audit_archive import make_audit_archive
from accessbot.aws.cloudtrail import make_cloudtrail
from accessbot.aws.review import AccountReview, IamReview
from accessbot.aws.session import make_client
from accessbot.handlers import memory
from accessbot.handlers.client import slack_client
from accessbot.handlers.delivery import Delivery
from accessbot.handlers.logs import configure_logging
from accessbot.handlers.profiles import SlackProfiles
from accessbot.handlers.sender import Sender
from accessbot.handlers.usergroups import SlackUserGroups, configured_groups
from accessbot.handlers.work import DecisionsFirst, Work, WorkDeps
from accessbot.jobs.background import Background, RevocationsFirst
from accessbot.jobs.registry import JobContext
from accessbot.jobs.scheduler import (
    SchedulerTimers,
    Together,
    add_periodic_jobs,
    make_scheduler,
)
from accessbot.jobs.worker import NICENESS, serve_tasks
from accessbot.models import make_engine, make_session_factory, transaction
from accessbot.services import leases
from accessbot.services.audit_export import AuditArchiver
from accessbot.services.catalog import SSO_KINDS, Catalog, ResourceKind, load_catalog
from accessbot.services.claim_loop import ClaimLoop
from accessbot.services.clock import utcnow
from accessbot.services.errors import ConfigError
from accessbot.services.grant_activity import GrantActivity
from accessbot.services.hygiene_runner import AccountSide, HygieneRunner
from accessbot.services.ports import (
    AccessProvider,
    ProviderError,
    ReportNotReady,
    StandingAccess,
)
from accessbot.services.review_runner import ReviewRunner, ReviewSide
from accessbot.services.runner import (
    GRANT_JOB,
    REVOKE_JOB,
    WARN_JOB,
    AccessRunner,
    worker_id,
)
from accessbot.settings import Settings

log = logging.getLogger("accessbot")

ACTIVITY_CHECK = timedelta(minutes=1)  # how often ended grants are looked for
TASK_WORKERS = 16  # acknowledged tasks run side by side (database work; AWS has its own pool)


@dataclass
class Components:
    settings: Settings
    catalog: Catalog
    engine: Engine
    sessions: sessionmaker[Session]
    client: WebClient
    directory: IamUserIndex
    runner: AccessRunner
    background: Background
    hygiene: HygieneRunner
    sender: Sender
    stopping: threading.Event
    decisions: DecisionsFirst  # Work's, and the AWS pool's and the sender's hold
    review: ReviewRunner | None = None
    activity: GrantActivity | None = None
    audit_archiver: AuditArchiver | None = None  # with audit.s3_bucket
    user_groups: SlackUserGroups | None = None  # approvers' and admins' Slack user groups

    def refresh_directories(self) -> None:
        """The IAM user indexes: the bot's own account's, then each other account's (one
        that does not answer is logged and left for the next run; lookups retry it)."""
        self.directory.refresh()
        for account_id, index in self.runner.account_directories.items():
            try:
                index.refresh()
            except ProviderError as exc:
                log.warning("account %s: could not refresh its IAM user index: %s",
                            account_id, exc)


def build(settings: Settings, catalog: Catalog) -> Components:
    """Everything behind the acknowledgements: the worker's (and run-job's) components."""
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    client = slack_client(settings)
    iam = make_iam_client(connections=2 * settings.aws_concurrency)  # AWS pool + timers
    directory = IamUserIndex(iam, grantable_path=catalog.iam_user_path)
    profiles = SlackProfiles(client)
    decisions = DecisionsFirst()  # a burst of Approve clicks before the work they owe
    background = Background(settings.aws_concurrency, decisions.hold)  # bounded, off decisions
    revocations = RevocationsFirst()  # access taken away before the messages about it
    # the accounts whose IAM the catalog changes or hygiene reads, through the role
    # assumed in each
    account_iam = {account_id: make_client("iam", None, 2 * settings.aws_concurrency,
                                           session=assumed_session(account))
                   for account_id, account in (catalog.assumed_accounts()
                                               | catalog.audited_accounts()).items()}
    account_directories = {i: IamUserIndex(client, grantable_path=catalog.iam_user_path,
                                           account=i) for i, client in account_iam.items()}
    providers: dict[str, AccessProvider] = dict.fromkeys(
        (ResourceKind.IAM_GROUP, ResourceKind.IAM_ROLE),
        IamByAccount(IamAccess(iam, role_grants=catalog.role_grants),
                     {i: IamAccess(c, role_grants=catalog.role_grants)
                      for i, c in account_iam.items()}))
    identity_center = None
    if catalog.uses_identity_center():
        identity_center = make_identity_center(catalog.identity_center,
                                               2 * settings.aws_concurrency)
        providers |= dict.fromkeys(SSO_KINDS, identity_center)
    user_groups = SlackUserGroups(client, configured_groups(catalog))
    runner = AccessRunner(sessions, catalog, provider=ByKind(providers), directory=directory,
                          profiles=profiles, sso_directory=identity_center,
                          account_directories=account_directories, groups=user_groups,
                          revoking=revocations.running)
    stopping = threading.Event()
    own_credentials = IamCredentials(iam, sleep=_sleep_unless(stopping))
    account_credentials = {i: AccountCredentials(IamCredentials(
        account_iam[i], sleep=_sleep_unless(stopping)), i) for i in catalog.audited_accounts()}
    hygiene = HygieneRunner(sessions, catalog, own_credentials,
                            owners=Owners(directory, profiles),
                            refresh_owners=directory.refresh, standing=identity_center,
                            accounts={i: AccountSide(
                                credentials, Owners(account_directories[i], profiles),
                                account_directories[i].refresh, roles=credentials)
                                for i, credentials in account_credentials.items()},
                            roles=own_credentials)
    review = ReviewRunner(sessions, catalog, identity_center=identity_center, groups=user_groups,
                          sides={
        "": ReviewSide(IamReview(iam), own_credentials, Owners(directory, profiles),
                       AccessAdvisor(iam)),
        **{i: ReviewSide(AccountReview(IamReview(account_iam[i]), i), account_credentials[i],
                         Owners(account_directories[i], profiles),
                         AccessAdvisor(account_iam[i]))
           for i in catalog.assumed_accounts()}})

    def messages_last() -> None:  # the sender's: decisions, then revocations, go first
        decisions.hold()
        revocations.hold()

    # the outbox does its own retrying, with Retry-After: no sleeping inside the client
    sender = Sender(sessions, Delivery(slack_client(settings, wait_out_rate_limits=False),
                                       catalog, groups=user_groups), hold=messages_last)
    audit_archiver = None
    if catalog.audit.s3_bucket:
        audit_archiver = AuditArchiver(runner.transaction,
                                       make_audit_archive(catalog.audit.s3_bucket),
                                       catalog.audit, utcnow)
    return Components(settings, catalog, engine, sessions, client, directory, runner,
                      background, hygiene, sender, stopping, decisions, review=review,
                      activity=_grant_activity(catalog, sessions, identity_center),
                      audit_archiver=audit_archiver, user_groups=user_groups)


def _grant_activity(catalog: Catalog, sessions: sessionmaker[Session],
                    names: StandingAccess | None) -> GrantActivity | None:
    """The CloudTrail lookup after grants end (cloudtrail.enabled), in every account."""
    if not catalog.cloudtrail.enabled:
        return None
    accounts = {a.id: a for a in catalog.accounts.values() if a.role_arn}
    activity = make_cloudtrail(accounts, catalog.cloudtrail.regions)
    return GrantActivity(sessions, catalog, activity, worker_id(), names=names)


def _sleep_unless(stopping: threading.Event):
    """A sleep for waiting on the credential report that ends when the bot stops, so that
    a SIGTERM is not held up by a job polling AWS (the next start runs the job again)."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise ReportNotReady("accessbot is stopping")

    return sleep


@dataclass
class Owners:
    """The owner lookup's two sources: IAM user tags, and Slack users by email."""

    directory: IamUserIndex
    profiles: SlackProfiles

    def tags_of(self, iam_user: str) -> dict[str, str]:
        return self.directory.tags_of(iam_user)

    def path_of(self, iam_user: str) -> str:
        return self.directory.path_of(iam_user)

    def user_for_email(self, email: str) -> str | None:
        return self.profiles.user_for_email(email)


def start_scheduler(components: Components) -> BackgroundScheduler:
    """Exact-time timers for every live grant, then the periodic jobs (the sweep first)."""
    # timers that fire together revoke together, their AWS calls on the AWS pool
    scheduler = make_scheduler(components.settings.aws_concurrency)
    runner = components.runner
    revoke = Together(lambda ids: runner.revoke_grants(ids, calls=components.background.call))
    runner.timers = SchedulerTimers(scheduler, {REVOKE_JOB: revoke, WARN_JOB: runner.warn,
                                                GRANT_JOB: runner.apply_grant})
    scheduler.start()
    live = runner.schedule_live_grants()
    add_periodic_jobs(scheduler, JobContext(runner, components.refresh_directories,
                                                   components.hygiene,
                                                   review=components.review,
                                                   activity=components.activity,
                                                   audit_archiver=components.audit_archiver,
                                                   user_groups=components.user_groups),
                      {"sweep": components.catalog.sweep_interval,
                       "grant-activity": _activity_interval(components.catalog)})
    log.info("scheduler running; %d live grants have timers", live)
    return scheduler


def _activity_interval(catalog: Catalog) -> timedelta:
    """Every minute; more often when cloudtrail.delay is shorter (a test's 1s)."""
    return max(min(ACTIVITY_CHECK, catalog.cloudtrail.delay), timedelta(seconds=1))


def run_worker(settings: Settings, tasks: Connection, ready: Event) -> None:
    """The worker process (started by serve): handed-over work, timers, periodic jobs."""
    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the web process stops us
    os.nice(NICENESS)
    try:
        catalog = load_catalog(settings.config_path)
        components = build(settings, catalog)
    except ConfigError as exc:
        print(f"accessbot: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    _take_over_from_the_dead(components)
    components.sender.start()
    scheduler = start_scheduler(components)
    owner = worker_id()
    work = Work(WorkDeps(components.sessions, catalog, components.runner, components.hygiene,
                         components.client, utcnow, components.background.submit, owner,
                         components.review, groups=components.user_groups),
                components.decisions)
    acknowledged = ClaimLoop("tasks", work.claim, work.run_all, TASK_WORKERS,
                             unblocks=work.unblocks).start()
    memory.started()  # as in the web process
    ready.set()

    def nudged(_wake: str, args: tuple[frozenset[str]]) -> None:
        [written] = args
        if work.worth_a_claim(written):
            acknowledged.wake()

    serve_tasks(tasks, nudged)
    components.stopping.set()  # a credential-report poll gives up; the next start retries
    acknowledged.stop()
    scheduler.shutdown(wait=False)
    components.background.shutdown(wait=True)
    components.sender.stop()  # after the work, which may still owe messages


def _take_over_from_the_dead(components: Components) -> None:
    """A crash's leaves, taken up now rather than when their leases run out."""
    with transaction(components.sessions) as session:
        leases.end_leases_of_the_dead(session, socket.gethostname(), _pid_alive)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return pid > 0 and not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Dead but not reaped: a worker killed with its web process belongs to PID 1, and a
    container's PID 1 may never reap it. Signal 0 still reaches a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:  # "pid (comm) state ...", comm may hold ")"
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):  # gone meanwhile, or not Linux
        return False
