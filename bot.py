"""accessbot: just-in-time AWS access through Slack.

    python bot.py                 serve (HTTP on $PORT, or Socket Mode with SLACK_APP_TOKEN):
                                  a web process that answers Slack, and its worker process
    python bot.py migrate         apply database migrations
    python bot.py run-job NAME    run one scheduled job once (for cron and tests)
    python bot.py check-config [FILE]
                                  validate the config file (no Slack, AWS or database)
    python bot.py doctor          check live what the bot needs: Slack, AWS, the database
    python bot.py audit [--since 7d] [--user U] [--resource R] [--request N] [--json]
                                  print the audit trail
    python bot.py --version

Installed, the same commands are `accessbot serve`, `accessbot migrate`, ...
"""

__version__ = "0.2.0"  # the one place; pyproject.toml reads it, CHANGELOG.md tells it

import os
import tempfile

# Both processes write their metrics samples here (services/metrics.py); it must be set
# before prometheus_client is first imported, which the imports below do.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="accessbot-metrics-")

import argparse
import contextlib
import gc
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import waitress
from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.error import BoltError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from accessbot.aws import (
    IamAccess,
    IamCredentials,
    IamUserIndex,
    aws_credentials_problem,
    make_iam_client,
)
from accessbot.aws.doctor import Needs, aws_checks
from accessbot.aws.session import aws_refusal, make_sts_client
from accessbot.handlers import health
from accessbot.handlers.boundary import SlackEndpoint
from accessbot.handlers.delivery import Delivery
from accessbot.handlers.doctor import slack_checks
from accessbot.handlers.handoff import GIVE_UP, DurableHandoff
from accessbot.handlers.listeners import Handoff, register
from accessbot.handlers.logs import configure_logging
from accessbot.handlers.profiles import SlackNames, SlackProfiles
from accessbot.handlers.sender import Sender
from accessbot.handlers.work import Work, WorkDeps
from accessbot.jobs.background import Background
from accessbot.jobs.registry import JOBS, JobContext
from accessbot.jobs.scheduler import SchedulerTimers, add_periodic_jobs, make_scheduler
from accessbot.jobs.worker import (
    NICENESS,
    WorkerFailed,
    WorkerProcess,
    die_with_parent,
    serve_tasks,
)
from accessbot.models import make_engine, make_session_factory, transaction
from accessbot.models.migrate import SchemaTooNew, schema_revisions, upgrade
from accessbot.services import audit, inbox, leases
from accessbot.services.catalog import Catalog, ResourceKind, load_catalog
from accessbot.services.claim_loop import ClaimLoop
from accessbot.services.clock import utcnow
from accessbot.services.doctor import Check, passed
from accessbot.services.durations import parse_duration
from accessbot.services.errors import ConfigError, InvalidInput
from accessbot.services.hygiene_runner import HygieneRunner
from accessbot.services.inbox import Claimed
from accessbot.services.ports import ReportNotReady
from accessbot.services.runner import REVOKE_JOB, WARN_JOB, AccessRunner, worker_id
from accessbot.settings import Settings, config_path, database_url, load_settings

log = logging.getLogger("accessbot")

SERVER_THREADS = 32
WAKE = "wake"  # the pipe's one message: a task was recorded in the inbox
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


def slack_client(settings: Settings, wait_out_rate_limits: bool = True) -> WebClient:
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url
                       or WebClient.BASE_URL, timeout=10)
    if wait_out_rate_limits:  # lookups (users.lookupByEmail is Tier 3) wait, a few times
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def build(settings: Settings, catalog: Catalog) -> Components:
    """Everything behind the acknowledgements: the worker's (and run-job's) components."""
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    client = slack_client(settings)
    iam = make_iam_client(connections=2 * settings.aws_concurrency)  # AWS pool + timers
    directory = IamUserIndex(iam)
    profiles = SlackProfiles(client)
    background = Background(settings.aws_concurrency)  # AWS calls: bounded, off decisions
    runner = AccessRunner(sessions, catalog, provider=IamAccess(iam), directory=directory,
                          profiles=profiles)
    stopping = threading.Event()
    hygiene = HygieneRunner(sessions, catalog,
                            IamCredentials(iam, sleep=_sleep_unless(stopping)),
                            owners=Owners(directory, profiles),
                            refresh_owners=directory.refresh)
    # the outbox does its own retrying, with Retry-After: no sleeping inside the client
    sender = Sender(sessions, Delivery(slack_client(settings, wait_out_rate_limits=False),
                                       catalog))
    return Components(settings, catalog, engine, sessions, client, directory, runner,
                      background, hygiene, sender, stopping)


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


def _not_the_env_token_warning(record: logging.LogRecord) -> bool:
    # Bolt reads SLACK_BOT_TOKEN from the environment itself and, since we hand it a client
    # built from that token, warns on every start that the token "will be unused"
    return record.getMessage() != warning_client_prioritized_and_token_skipped()


def build_app(settings: Settings, catalog: Catalog, handoff: Handoff) -> App:
    """The web process's Bolt app: it checks, hands over and acknowledges, nothing more."""
    bolt_log = logging.getLogger("slack_bolt.App")
    if _not_the_env_token_warning not in bolt_log.filters:
        bolt_log.addFilter(_not_the_env_token_warning)
    try:
        app = App(
            signing_secret=settings.slack_signing_secret,
            client=slack_client(settings),
            logger=bolt_log,
            # Listeners only hand work over, so they run on the server's own threads: no
            # queue behind Bolt's small pool.
            process_before_response=True,
        )  # verifies the token once, here, and keeps the answer (no auth.test per request)
    except OSError as exc:  # no answer: DNS, refused, timeout, proxy
        raise ConfigError(f"Slack did not answer at {settings.slack_api_url or WebClient.BASE_URL}"
                          f" ({getattr(exc, 'reason', None) or exc}): check this host's network "
                          "access to Slack (or SLACK_API_URL)") from None
    except (BoltError, SlackClientError) as exc:  # an answer: the token was refused
        raise ConfigError(f"SLACK_BOT_TOKEN: Slack refused the token: {exc}") from None
    register(app, catalog, handoff)
    return app


class WebApp:
    """WSGI routing: Slack requests (handlers/boundary.py), and the operational endpoints
    (handlers/health.py)."""

    def __init__(self, slack: SlackEndpoint, ready: Callable[[], dict[str, bool]],
                 metrics: Callable[[], bytes] = lambda: b""):
        self.slack = slack
        self.ready = ready
        self.metrics = metrics

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/slack/events" and method == "POST":
            return self.slack(environ, start_response)
        if method not in ("GET", "HEAD"):
            return health.respond(start_response, "404 Not Found", b"not found\n",
                                  "text/plain")
        if path == "/healthz":  # liveness: this process serves
            return health.respond(start_response, "200 OK", b'{"ok": true}',
                                  "application/json")
        if path == "/readyz":
            checks = self.ready()
            ok = all(checks.values())
            return health.respond(start_response,
                                  "200 OK" if ok else "503 Service Unavailable",
                                  json.dumps({"ok": ok, **checks}).encode(),
                                  "application/json")
        if path == "/metrics":
            return health.respond(start_response, "200 OK", self.metrics(),
                                  "text/plain; version=0.0.4; charset=utf-8")
        return health.respond(start_response, "404 Not Found", b"not found\n", "text/plain")


def start_scheduler(components: Components) -> BackgroundScheduler:
    """Exact-time timers for every live grant, then the periodic jobs (the sweep first)."""
    # revocation timers call AWS: as many at once as the AWS pool allows
    scheduler = make_scheduler(components.settings.aws_concurrency)
    runner = components.runner
    runner.timers = SchedulerTimers(scheduler, {REVOKE_JOB: runner.revoke_grant,
                                                WARN_JOB: runner.warn})
    scheduler.start()
    live = runner.schedule_live_grants()
    add_periodic_jobs(scheduler, JobContext(runner, components.directory.refresh,
                                                   components.hygiene),
                      {"sweep": components.catalog.sweep_interval})
    log.info("scheduler running; %d live grants have timers", live)
    return scheduler


def migrate(url: str) -> None:
    """The schema at head before anything else touches the database, or one clear line."""
    try:
        upgrade(url)
    except SchemaTooNew as exc:  # a rolled-back deploy: running on would damage the data
        raise ConfigError(str(exc)) from None
    except OperationalError as exc:  # the database does not answer, or refused us
        raise ConfigError(f"DATABASE_URL ({_where(url)}): {_first_line(exc, url)}") from None


def _where(url: str) -> str:
    """host:port/database of a Postgres URL (never its password), or SQLite's file."""
    parts = make_url(url)
    if parts.host is None:
        return parts.database or ":memory:"
    return f"{parts.host}:{parts.port or 5432}/{parts.database or ''}"


def _first_line(exc: OperationalError, url: str) -> str:
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    password = make_url(url).password
    return lines[0].replace(password, "***") if password else lines[0]


def serve(settings: Settings) -> int:
    """The web process: Slack's requests and /healthz; the worker process does the rest."""
    catalog = load_catalog(settings.config_path)
    for warning in catalog.warnings():
        log.warning("%s: %s", settings.config_path, warning)
    require_aws_credentials()
    worker_gone = threading.Event()

    def on_worker_exit(_code: int) -> None:
        worker_gone.set()
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread shuts down, as for a signal

    _forget_old_metrics()
    worker = WorkerProcess(run_worker, settings, on_exit=on_worker_exit)
    # the acknowledgements' inbox writer (handlers/handoff.py) and /readyz: never waiting
    # long for SQLite's lock or a Postgres connection (Slack wants an answer in 3 s)
    engine = make_engine(settings.database_url, busy_timeout=0, pool_size=4,
                         max_overflow=4, connect_timeout=GIVE_UP)

    def nudge(task_id: int) -> None:
        try:
            worker.handoff(WAKE, task_id)
        except WorkerFailed as exc:  # the row is safe; a worker (ours restarted) finds it
            log.warning("could not nudge the worker about task #%s: %s", task_id, exc)

    handoff = DurableHandoff(engine, nudge)
    app = build_app(settings, catalog, handoff)  # Slack answers, and takes the token...
    migrate(settings.database_url)  # ...before anything changes in the database
    worker.start()
    try:
        return _serve_http(settings, app, worker, worker_gone, engine)
    finally:
        worker.stop(settings.drain_seconds)
        engine.dispose()


def _forget_old_metrics() -> None:
    """Samples of earlier processes (prometheus_client's multiprocess files) end with them."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(directory):
        if name.endswith(".db"):
            with contextlib.suppress(FileNotFoundError):  # another start, at the same time
                os.remove(os.path.join(directory, name))


def _serve_http(settings: Settings, app: App, worker: WorkerProcess,
                worker_gone: threading.Event, engine: Engine) -> int:
    socket_mode = connect_socket_mode(app, settings) if settings.socket_mode else None

    def ready() -> dict[str, bool]:
        return health.ready(worker.running, lambda: socket_mode is None
                            or socket_mode.client.is_connected(), engine)

    web = WebApp(SlackEndpoint(app, settings.slack_signing_secret), ready,
                 lambda: health.metrics_text(engine))
    server = waitress.create_server(web, host="0.0.0.0", port=settings.port,
                                    threads=SERVER_THREADS, ident="accessbot")
    # What start-up allocated lives as long as the process: out of the collector's sight,
    # a full collection no longer walks it (54 ms for 100,000 objects: a stalled burst).
    gc.freeze()
    stop = threading.Event()

    def shutdown(signum, _frame):
        log.info("signal %s: shutting down", signum)
        stop.set()
        server.close()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("listening on :%d (%s, GET /healthz)", settings.port,
             "Socket Mode" if socket_mode else "POST /slack/events")
    try:
        server.run()
    except (OSError, ValueError):
        if not stop.is_set():  # closing the socket from the handler ends run() this way
            raise
    if socket_mode is not None:
        socket_mode.close()
    return 1 if worker_gone.is_set() else 0


def run_worker(settings: Settings, tasks: Connection, ready: Event) -> None:
    """The worker process (started by serve): handed-over work, timers, periodic jobs."""
    die_with_parent()
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
                         components.client, utcnow, components.background.submit, owner))

    def claim(slots: int) -> list[Claimed]:
        with transaction(components.sessions) as session:
            return inbox.claim(session, owner, utcnow(), slots)

    acknowledged = ClaimLoop("tasks", claim, work.run, TASK_WORKERS).start()
    gc.freeze()  # as in the web process: collections stay short
    ready.set()
    serve_tasks(tasks, lambda _wake, _args: acknowledged.wake())
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
    return pid > 0


def connect_socket_mode(app: App, settings: Settings) -> SocketModeHandler:
    handler = SocketModeHandler(app, settings.slack_app_token)
    try:
        handler.connect()
    except (SlackClientError, OSError) as exc:
        raise ConfigError(f"SLACK_APP_TOKEN: could not open a Socket Mode connection: {exc}") \
            from None
    if not handler.client.is_connected():
        raise ConfigError("SLACK_APP_TOKEN: Slack gave a Socket Mode URL, but connecting to it "
                          "failed (see the log above)")
    log.info("Socket Mode connected")
    return handler


def run_job(settings: Settings, name: str) -> int:
    job = JOBS.get(name)
    if job is None:
        raise ConfigError(f"run-job: unknown job '{name}'; known: {', '.join(sorted(JOBS))}")
    catalog = load_catalog(settings.config_path)
    require_aws_credentials()
    migrate(settings.database_url)
    components = build(settings, catalog)
    _take_over_from_the_dead(components)  # e.g. the DM a killed bot was sending, before ours
    context = JobContext(components.runner, components.directory.refresh, components.hygiene)
    if job.period is None:
        result = job.run(context)
    else:  # now, whatever the period, but never beside a run of the same job elsewhere
        result = components.hygiene.run_if_due(name, timedelta(0), lambda: job.run(context))
        if result is None:
            result = {"skipped": "another accessbot process is running this job right now"}
    components.sender.drain()  # what the job owes people, now (a running bot would too)
    print(json.dumps({"job": name, "result": _jsonable(result)}))
    return 0


def require_aws_credentials() -> None:
    """Without good credentials every grant and revocation would fail later, in the log."""
    problem = aws_credentials_problem()
    if problem:
        raise ConfigError(f"AWS credentials: {problem}; the bot cannot grant or revoke "
                          "without them")
    refused = aws_refusal()
    if refused:
        raise ConfigError(f"AWS credentials: {refused}; replace them (or, for "
                          "SignatureDoesNotMatch, check the secret key and this host's clock)")


def check_config(path: str) -> int:
    """Validate the file as the bot would on start; warnings go with it, on stderr."""
    catalog = load_catalog(path)
    for warning in catalog.warnings():
        print(f"accessbot: warning: {path}: {warning}", file=sys.stderr)
    print(f"{path}: valid: {len(catalog.resources)} resources "
          f"({', '.join(sorted(catalog.resources))})")
    return 0


def doctor(settings: Settings) -> int:
    """Live checks, one line each: exit 0 when all pass, 1 when any fails."""
    catalog = load_catalog(settings.config_path)
    for warning in catalog.warnings():
        print(f"! {settings.config_path}: {warning}")
    kinds = {kind: tuple(sorted({r.target for r in catalog.resources.values() if r.kind is kind}))
             for kind in ResourceKind}
    needs = Needs(kinds[ResourceKind.IAM_GROUP], kinds[ResourceKind.IAM_ROLE],
                  catalog.hygiene.enabled)
    checks = [Check(True, f"config {settings.config_path}: {len(catalog.resources)} resources")]
    print(checks[0].line(), flush=True)
    for more in (lambda: slack_checks(slack_client(settings), catalog),
                 lambda: aws_checks(make_iam_client(), make_sts_client(), needs),
                 lambda: [database_check(settings.database_url)]):
        found = more()
        print("\n".join(check.line() for check in found), flush=True)
        checks += found
    print("all checks passed" if passed(checks) else
          f"{sum(not c.ok for c in checks)} of {len(checks)} checks failed")
    return 0 if passed(checks) else 1


def database_check(url: str) -> Check:
    where = _where(url)
    migrate = "run accessbot migrate (serving does it too)"
    if make_url(url).host is None and not os.path.exists(where):
        return Check(False, f"database {where}: no such file", migrate)
    try:
        current, heads, known = schema_revisions(url)
    except OperationalError as exc:
        return Check(False, f"database {where}: {_first_line(exc, url)}",
                     "check DATABASE_URL, and that the server answers this host")
    at = ", ".join(sorted(current)) or "no migration"
    if current == heads:
        return Check(True, f"database {where}: reachable, at the latest migration ({at})")
    if current - known:
        return Check(False, f"database {where}: at {at}, newer than this accessbot",
                     "run the newer accessbot, or restore a backup")
    return Check(False, f"database {where}: at {at}, this accessbot needs "
                 f"{', '.join(sorted(heads))}", migrate)


def print_audit(args: argparse.Namespace) -> int:
    """The trail, oldest first: a sentence a line, or JSON lines (--json) for machines."""
    settings = load_settings(need_slack=False)
    wanted = audit.TrailFilter(since=_since(args.since), user=args.user,
                               resource=args.resource, request_id=args.request,
                               limit=args.limit)
    engine = make_engine(settings.database_url, connect_timeout=5)
    try:
        with make_session_factory(engine)() as session:
            entries = audit.trail(session, wanted)
    except OperationalError as exc:  # unreachable, or never migrated (no table)
        raise ConfigError(f"DATABASE_URL ({_where(settings.database_url)}): "
                          f"{_first_line(exc, settings.database_url)}") from None
    finally:
        engine.dispose()
    names = SlackNames(slack_client(settings) if settings.slack_bot_token else None)
    for entry in entries:
        event, text = entry.event, audit.sentence(entry, names)
        if args.json:
            print(json.dumps({
                "at": event.at.isoformat(), "action": event.action, "actor": event.actor,
                "request_id": event.request_id, "grant_id": event.grant_id,
                "finding_id": event.finding_id, "resource": entry.resource,
                "detail": event.detail, "text": text}, ensure_ascii=False))
        else:
            print(f"{event.at:%Y-%m-%d %H:%M:%S} UTC  {text}")
    return 0


def _since(text: str) -> datetime | None:
    """--since: a duration back from now (7d, 12h), a date or a time (ISO 8601), or 'all'."""
    if text == "all":
        return None
    try:
        return utcnow() - parse_duration(text)
    except InvalidInput:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since: '{text}' is neither a duration (7d, 12h) nor a date "
                          "(2026-12-01)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jsonable(value):
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(v) for k, v in vars(value).items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, type(None), dict)) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="accessbot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"accessbot {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the bot (the default)")
    commands.add_parser("migrate", help="apply database migrations")
    job = commands.add_parser("run-job", help="run one scheduled job once")
    job.add_argument("name", help=", ".join(sorted(JOBS)))
    check = commands.add_parser("check-config", help="validate the config file, touching "
                                "nothing (for a config repository's CI)")
    check.add_argument("file", nargs="?", help="default: $ACCESSBOT_CONFIG, else "
                       "./accessbot.yaml")
    commands.add_parser("doctor", help="check live everything the bot needs (Slack, AWS, the "
                        "database), one line each; exit 1 if anything is wrong")
    trail = commands.add_parser("audit", help="print the audit trail, oldest first")
    trail.add_argument("--since", default="7d", help="a duration back from now (7d, 12h), "
                       "a date (2026-12-01), or 'all'; default 7d")
    trail.add_argument("--user", help="a Slack user id or an IAM user name")
    trail.add_argument("--resource", help="a resource of the catalog")
    trail.add_argument("--request", type=int, help="a request number")
    trail.add_argument("--limit", type=int, default=1000, help="the most recent this many")
    trail.add_argument("--json", action="store_true", help="JSON lines, for machines")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "check-config":
            return check_config(args.file or config_path())
        if args.command == "audit":
            return print_audit(args)
        if args.command == "migrate":
            migrate(database_url())
            print("database is at the latest migration")
            return 0
        settings = load_settings()
        if args.command == "run-job":
            return run_job(settings, args.name)
        if args.command == "doctor":
            return doctor(settings)
        return serve(settings)
    except ConfigError as exc:
        print(f"accessbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except WorkerFailed as exc:
        print(f"accessbot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
