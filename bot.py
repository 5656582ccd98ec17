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
    python bot.py audit verify    check the audit trail's hash chain; exit 1 if broken
    python bot.py audit export --since DATE [--format jsonl|csv] [--output FILE]
                                  write the audit trail for a SIEM
    python bot.py --version

Installed, the same commands are `accessbot serve`, `accessbot migrate`, ...
"""

from __future__ import annotations

__version__ = "0.2.0"  # the one place; pyproject.toml reads it, CHANGELOG.md tells it

import os
import tempfile

# Both processes write their metrics samples here (services/metrics.py); it must be set
# before prometheus_client is first imported (by the modules the commands load).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="accessbot-metrics-")

import argparse
import json
import logging
import multiprocessing
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from accessbot.handlers.logs import configure_logging
from accessbot.services.catalog import load_catalog
from accessbot.services.doctor import Check, passed
from accessbot.services.errors import ConfigError
from accessbot.settings import Settings, config_path, database_url, load_settings

if TYPE_CHECKING:
    from sqlalchemy.exc import OperationalError

# The heavy imports are inside the commands: the web process, and every process
# multiprocessing starts (it imports this module again), load only what they use.

log = logging.getLogger("accessbot")


def migrate(url: str) -> None:
    """The schema at head before anything else touches the database, or one clear line."""
    from sqlalchemy.exc import OperationalError

    from accessbot.models.migrate import SchemaTooNew, upgrade

    try:
        upgrade(url)
    except SchemaTooNew as exc:  # a rolled-back deploy: running on would damage the data
        raise ConfigError(str(exc)) from None
    except OperationalError as exc:  # the database does not answer, or refused us
        raise ConfigError(f"DATABASE_URL ({_where(url)}): {_first_line(exc, url)}") from None


def _where(url: str) -> str:
    """host:port/database of a Postgres URL (never its password), or SQLite's file."""
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    if parts.host is None:
        return parts.database or ":memory:"
    return f"{parts.host}:{parts.port or 5432}/{parts.database or ''}"


def _first_line(exc: OperationalError, url: str) -> str:
    from sqlalchemy.engine import make_url

    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    password = make_url(url).password
    return lines[0].replace(password, "***") if password else lines[0]


def serve(settings: Settings) -> int:
    """The web process (handlers/web.py), which starts the worker (jobs/process.py)."""
    from accessbot.handlers import web

    catalog = load_catalog(settings.config_path)
    for warning in catalog.warnings():
        log.warning("%s: %s", settings.config_path, warning)
    return web.serve(settings, catalog, lambda: _in_a_process_of_its_own(_preflight, settings))


def _preflight(settings: Settings) -> None:
    """The AWS credentials, then the migration: boto3 and Alembic end with this process."""
    configure_logging()
    try:
        require_aws_credentials()
        migrate(settings.database_url)
    except ConfigError as exc:
        print(f"accessbot: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


def _in_a_process_of_its_own(target, *args) -> int:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args,
                                                           name=target.__name__.strip("_"))
    process.start()
    process.join()
    return process.exitcode


def require_aws_credentials() -> None:
    """Without good credentials every grant and revocation would fail later, in the log."""
    from accessbot.aws.session import aws_credentials_problem, aws_refusal

    problem = aws_credentials_problem()
    if problem:
        raise ConfigError(f"AWS credentials: {problem}; the bot cannot grant or revoke "
                          "without them")
    refused = aws_refusal()
    if refused:
        raise ConfigError(f"AWS credentials: {refused}; replace them (or, for "
                          "SignatureDoesNotMatch, check the secret key and this host's clock)")


def run_job(settings: Settings, name: str) -> int:
    from accessbot.jobs.process import _take_over_from_the_dead, build
    from accessbot.jobs.registry import JOBS, JobContext, run_due

    job = JOBS.get(name)
    if job is None:
        raise ConfigError(f"run-job: unknown job '{name}'; known: {', '.join(sorted(JOBS))}")
    catalog = load_catalog(settings.config_path)
    require_aws_credentials()
    migrate(settings.database_url)
    components = build(settings, catalog)
    _take_over_from_the_dead(components)  # e.g. the DM a killed bot was sending, before ours
    context = JobContext(components.runner, components.refresh_directories, components.hygiene,
                         review=components.review, activity=components.activity,
                         audit_archiver=components.audit_archiver,
                         user_groups=components.user_groups)
    if job.now is not None:
        result = job.now(context)
    elif job.period is None:
        result = job.run(context)
    else:  # now, whatever the period, but never beside a run of the same job elsewhere
        result = run_due(job, context, timedelta(0))
        if result is None:
            result = {"skipped": "another accessbot process is running this job right now"}
    components.sender.drain()  # what the job owes people, now (a running bot would too)
    print(json.dumps({"job": name, "result": _jsonable(result)}))
    return 0


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
    from accessbot.aws.doctor import (
        InAccount,
        Needs,
        account_checks,
        aws_checks,
        identity_center_checks,
    )
    from accessbot.aws.identity_center import make_identity_center
    from accessbot.aws.session import make_iam_client, make_sts_client
    from accessbot.handlers.client import slack_client
    from accessbot.handlers.doctor import slack_checks
    from accessbot.services.catalog import SSO_KINDS, ResourceKind

    catalog = load_catalog(settings.config_path)
    for warning in catalog.warnings():
        print(f"! {settings.config_path}: {warning}")
    kinds = {kind: tuple(sorted({r.target for r in catalog.resources.values()
                                 if r.kind is kind and (kind in SSO_KINDS or not r.accounts)}))
             for kind in ResourceKind}  # IAM kinds of the bot's own account; others: assumed
    accounts = catalog.assumed_accounts() | catalog.audited_accounts()  # roles assumed
    needs = Needs(kinds[ResourceKind.IAM_GROUP], kinds[ResourceKind.IAM_ROLE],
                  catalog.hygiene.enabled, tuple(a.role_arn for a in accounts.values()),
                  catalog.role_grants, review=catalog.review.enabled,
                  activity=catalog.cloudtrail.enabled,
                  audit_archive=(catalog.audit.s3_bucket, catalog.audit.s3_prefix)
                  if catalog.audit.s3_bucket else None)
    checks = [Check(True, f"config {settings.config_path}: {len(catalog.resources)} resources")]
    print(checks[0].line(), flush=True)

    def there(kind: ResourceKind, account_id: str) -> tuple[str, ...]:
        return tuple(sorted(r.target for r in catalog.resources.values()
                            if r.kind is kind and r.accounts == (account_id,)))

    in_accounts = [InAccount(account, there(ResourceKind.IAM_GROUP, i),
                             there(ResourceKind.IAM_ROLE, i)) for i, account in accounts.items()]

    def sso() -> list[Check]:
        if not catalog.uses_identity_center():
            return []
        return identity_center_checks(
            make_identity_center(catalog.identity_center, connections=4),
            kinds[ResourceKind.SSO_PERMISSION_SET], kinds[ResourceKind.SSO_GROUP])

    for more in (lambda: slack_checks(slack_client(settings), catalog),
                 lambda: aws_checks(make_iam_client(), make_sts_client(), needs),
                 lambda: account_checks(in_accounts), sso,
                 lambda: [database_check(settings.database_url)]):
        found = more()
        for check in found:
            print(check.line(), flush=True)
        checks += found
    print("all checks passed" if passed(checks) else
          f"{sum(not c.ok for c in checks)} of {len(checks)} checks failed")
    return 0 if passed(checks) else 1


def database_check(url: str) -> Check:
    import os

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from accessbot.models.migrate import schema_revisions

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
    from sqlalchemy.exc import OperationalError

    from accessbot.handlers.client import slack_client
    from accessbot.handlers.profiles import SlackNames
    from accessbot.models import make_engine, make_session_factory
    from accessbot.services import audit

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


def _audit_database(read):
    """Run read(session) on the database of DATABASE_URL, or one clear line."""
    from sqlalchemy.exc import OperationalError

    from accessbot.models import make_engine, make_session_factory

    settings = load_settings(need_slack=False)
    engine = make_engine(settings.database_url, connect_timeout=5)
    try:
        with make_session_factory(engine)() as session:
            return read(session)
    except OperationalError as exc:  # unreachable, or never migrated (no table)
        raise ConfigError(f"DATABASE_URL ({_where(settings.database_url)}): "
                          f"{_first_line(exc, settings.database_url)}") from None
    finally:
        engine.dispose()


def verify_audit() -> int:
    """One line if the chain is intact (exit 0), else one line per problem (exit 1)."""
    from accessbot.services import audit_chain

    result = _audit_database(audit_chain.verify)
    for problem in result.problems:
        print(f"audit trail: {problem.text}")
    if result.problems:
        return 1
    newest = (f" (newest at {result.newest_unsealed_at:%Y-%m-%d %H:%M:%S} UTC)"
              if result.newest_unsealed_at else "")
    print(f"audit trail intact: {result.sealed} rows sealed, {result.unsealed} not sealed "
          f"yet{newest}")
    return 0


def export_audit(args: argparse.Namespace) -> int:
    """Every row since --since, oldest first, streamed to --output (default stdout)."""
    from accessbot.services import audit_export
    from accessbot.services.errors import InvalidInput

    try:
        since = audit_export.parse_since(args.export_since)
    except InvalidInput as exc:
        print(f"accessbot: audit export: {exc}", file=sys.stderr)
        return 2

    def export(session) -> int:
        found = audit_export.rows(session, since)
        if not args.output:
            return audit_export.write(found, sys.stdout, args.format)
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            return audit_export.write(found, out, args.format)

    count = _audit_database(export)
    print(f"accessbot: audit export: {count} rows", file=sys.stderr)
    return 0


def _since(text: str) -> datetime | None:
    """--since: a duration back from now (7d, 12h), a date or a time (ISO 8601), or 'all'."""
    from accessbot.services.clock import utcnow
    from accessbot.services.durations import parse_duration
    from accessbot.services.errors import InvalidInput

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
    from accessbot.jobs.registry import JOBS
    from accessbot.jobs.worker import WorkerFailed

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
    evidence = trail.add_subparsers(dest="audit_command")
    evidence.add_parser("verify", help="check the hash chain: exit 0 if intact, else 1 and "
                        "one line per edited, missing or reordered row")
    export = evidence.add_parser("export", help="write every row since a date, oldest first, "
                                 "with its seq and hashes (for a SIEM)")
    export.add_argument("--since", dest="export_since", required=True,
                        help="a date (2026-12-01) or an ISO 8601 time")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", help="a file (default: standard output)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "check-config":
            return check_config(args.file or config_path())
        if args.command == "audit" and args.audit_command == "verify":
            return verify_audit()
        if args.command == "audit" and args.audit_command == "export":
            return export_audit(args)
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
