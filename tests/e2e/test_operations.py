"""Operating the bot: several processes on one Postgres, cron jobs, start-up errors, and
the web and worker processes of one bot."""

import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from sqlalchemy import func, select

from accessbot.handlers.ids import ActionId
from accessbot.models import (
    AccessRequest,
    ApprovalMessage,
    AuditEvent,
    Grant,
    GrantStatus,
    OutboxMessage,
    OutboxStatus,
    RequestStatus,
    make_engine,
)
from accessbot.services.clock import utcnow
from tests.conftest import create_database, drop_database
from tests.e2e.test_loop import db, dm_containing, members, request_via_command
from tests.fakes.background_server import HttpBackgroundServer
from tests.fakes.harness import (
    BotProcess,
    SlackSender,
    free_port,
    post_together,
    process_alive,
    run_bot_command,
)
from tests.fakes.latency_proxy import LatencyProxy
from tests.fakes.slack_api import render_text
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture
def shared_postgres(postgres_server):
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


def sleep_past(moment) -> None:
    """Sleep until half a second after `moment` (a recorded expiry, UTC)."""
    time.sleep(max(0.0, (moment - utcnow()).total_seconds()) + 0.5)


@pytest.mark.postgres
def test_two_processes_on_one_postgres_grant_and_revoke_once(
        shared_postgres, bot_env, aws, slack, tmp_path):
    users = [f"U0USER{i:02d}" for i in range(12)]
    for index, user in enumerate(users):
        aws.create_user(UserName=f"user{index:02d}",
                        Tags=[{"Key": "slack-user-id", "Value": user}])
    env = {**bot_env, "DATABASE_URL": shared_postgres}
    bots = [BotProcess(env, tmp_path / f"bot{i}.log").start() for i in range(2)]
    try:
        senders = [SlackSender(bot.url, slack.url) for bot in bots]
        # 12 s: on a loaded machine the twelve grants and their DMs took 6 s after the
        # clicks, and 4 s grants ended before all twelve were members at once
        request_ids = [request_via_command(senders[i % 2], slack, user=user,
                                           text="prod-admins 12s shared work")
                       for i, user in enumerate(users)]
        # every request approved at the same moment through both processes, by both approvers
        post_together([(sender, sender.click_body(approver, ActionId.APPROVE, str(request_id)))
                       for request_id in request_ids for sender in senders
                       for approver in ("U0BOB", "U0DAVE")])
        slack.wait_for(lambda: len(members(aws)) == len(users))
        for user in users:  # every grant is recorded as active before the crash
            dm_containing(slack, user, "You have prod-admins until")

        # both crash; both come back after expiry and race to revoke the same grants
        for bot in bots:
            bot.crash()
        with db(env)() as session:
            last_end = session.scalar(select(func.max(Grant.expires_at)))
        sleep_past(last_end)
        restarted = [threading.Thread(target=bot.start) for bot in bots]
        for thread in restarted:
            thread.start()
        for thread in restarted:
            thread.join()
        slack.wait_for(lambda: not members(aws), timeout=20)
        for user in users:  # a DM sent as they crashed holds its queue for its lease (20 s)
            dm_containing(slack, user, "access to prod-admins ended", timeout=45)
        time.sleep(1.0)  # give a duplicate, if there were one, time to show up
    finally:
        for bot in bots:
            bot.stop()

    with db(env)() as session:
        assert session.scalar(select(func.count(Grant.id))) == len(users)
        assert set(session.scalars(select(Grant.status))) == {GrantStatus.REVOKED}
        for action in ("approved", "granted", "revoked"):
            per_grant = session.execute(
                select(AuditEvent.request_id, func.count())
                .where(AuditEvent.action == action).group_by(AuditEvent.request_id)).all()
            assert sorted(n for _, n in per_grant) == [1] * len(users), action
    ended = [c.args["channel"] for c in slack.calls("chat.postMessage")
             if "ended" in c.args.get("text", "")]
    assert sorted(ended) == sorted(users)  # each requester told exactly once


def test_run_job_sweep_revokes_without_a_running_bot(start_bot, slack, aws, bot_env):
    bot = start_bot()
    sender = SlackSender(bot.url, slack.url)
    request_id = request_via_command(sender, slack, text="prod-admins 5s cron test")
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    dm_containing(slack, "U0ALICE", "You have prod-admins until")  # the grant is recorded
    bot.crash()  # before the grant ends (5 s: room for a busy machine's grant and DM)
    with db(bot_env)() as session:
        grant = session.scalars(select(Grant)).one()
    assert grant.status is GrantStatus.ACTIVE
    sleep_past(grant.expires_at)

    result = run_bot_command(bot_env, "run-job", "sweep")
    assert result.returncode == 0, result.stderr
    assert '"revoked": [1]' in result.stdout
    assert members(aws) == set()
    dm_containing(slack, "U0ALICE", "access to prod-admins ended")


def test_a_well_configured_start_logs_no_warning(bot):
    """Nothing for an operator to learn to ignore (Bolt's "token will be unused" was one)."""
    warnings = [line for line in bot.log().splitlines() if " WARNING " in line]
    assert warnings == [], warnings


def test_run_job_unknown_name_is_a_clear_error(bot_env):
    result = run_bot_command(bot_env, "run-job", "nope")
    assert result.returncode == 2
    assert "unknown job 'nope'" in result.stderr and "sweep" in result.stderr


@pytest.mark.parametrize("unset, message", [
    ("SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN is not set"),
    ("SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET is not set"),
])
def test_missing_settings_stop_the_bot_with_one_clear_line(bot_env, unset, message):
    result = run_bot_command({**bot_env, unset: ""})
    assert result.returncode == 2
    assert result.stderr.strip() == f"accessbot: configuration error: {message}"


def _tables(bot_env) -> list[str]:
    engine = make_engine(bot_env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return list(connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
    finally:
        engine.dispose()


def test_slack_not_answering_is_not_called_a_bad_token_and_migrates_nothing(bot_env):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/api/"
    result = run_bot_command({**bot_env, "SLACK_API_URL": url})
    assert result.returncode == 2
    line, = result.stderr.strip().splitlines()  # one line, nothing logged around it
    assert line.startswith(f"accessbot: configuration error: Slack did not answer at {url} (")
    assert "check this host's network access to Slack" in line and "token" not in line
    assert "Traceback" not in result.stderr
    assert _tables(bot_env) == []  # checked before the database is touched


def test_a_token_slack_refuses_is_named_before_the_database_is_touched(bot_env, slack):
    slack.fail("auth.test", error="invalid_auth")
    result = run_bot_command(bot_env)
    assert result.returncode == 2
    assert "accessbot: configuration error: SLACK_BOT_TOKEN: Slack refused the token" \
        in result.stderr and "invalid_auth" in result.stderr
    assert _tables(bot_env) == []


@pytest.mark.parametrize("profile, message", [
    (None, "AWS credentials: none found"),
    ("nope", "AWS credentials: The config profile (nope) could not be found"),
])
def test_no_aws_credentials_stop_the_start_in_one_line(bot_env, tmp_path, profile, message):
    nothing = str(tmp_path / "none")
    env = {**bot_env, "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
           "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None, "AWS_SHARED_CREDENTIALS_FILE": nothing,
           "AWS_CONFIG_FILE": nothing, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None}
    if profile:
        env["AWS_PROFILE"] = profile
    result = run_bot_command(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"accessbot: configuration error: {message}"), result.stderr
    assert "cannot grant or revoke without them" in result.stderr
    assert _tables(bot_env) == []


class RefusingSts(HttpBackgroundServer):
    """An STS endpoint that answers every call as AWS answers a revoked access key."""

    def _make_server(self):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                        b"<Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>"
                        b"The security token included in the request is invalid.</Message>"
                        b"</Error><RequestId>r-1</RequestId></ErrorResponse>")
                self.send_response(403)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"


def test_a_database_that_does_not_answer_stops_serve_in_one_line(bot_env):
    """serve migrates in a process of its own (bot._preflight): its one line is the start's."""
    port = free_port()
    result = run_bot_command({**bot_env, "DATABASE_URL":
                              f"postgresql://bot:s3cret@127.0.0.1:{port}/accessbot"}, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"accessbot: configuration error: DATABASE_URL (127.0.0.1:{port}/accessbot): "), lines
    assert "s3cret" not in result.stderr


def test_aws_credentials_that_aws_refuses_stop_the_start_in_one_line(bot_env):
    with RefusingSts() as sts:
        result = run_bot_command({**bot_env, "AWS_ENDPOINT_URL_STS": sts.url})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "accessbot: configuration error: AWS credentials: AWS refused them "
        "(InvalidClientTokenId: The security token included in the request is invalid.); "
        "replace them (or, for SignatureDoesNotMatch, check the secret key and this host's "
        "clock)")
    assert _tables(bot_env) == []


@pytest.mark.parametrize("change, message", [
    ({"PORT": "http"}, "PORT: 'http' is not a TCP port number"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: expected"),
    ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN: expected a token starting"),
    ({"ACCESSBOT_CONFIG": "/nonexistent.yaml"}, "config file /nonexistent.yaml does not exist"),
    ({"AWS_CONCURRENCY": "0"}, "AWS_CONCURRENCY: '0' is not a number from 1 to 256"),
    ({"DRAIN_SECONDS": "forever"}, "DRAIN_SECONDS: 'forever' is not a number of seconds"),
])
def test_invalid_settings_are_named(bot_env, change, message):
    result = run_bot_command({**bot_env, **change})
    assert result.returncode == 2
    assert message in result.stderr


def test_invalid_config_names_the_bad_value(bot_env, tmp_path):
    config = yaml.safe_load(open(bot_env["ACCESSBOT_CONFIG"]))
    config["resources"]["prod-admins"]["default_duration"] = "9h"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_bot_command({**bot_env, "ACCESSBOT_CONFIG": str(path)})
    assert result.returncode == 2
    assert "resources.prod-admins.default_duration" in result.stderr


def test_migrate_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run_bot_command({"DATABASE_URL": url}, "migrate")
    assert result.returncode == 0, result.stderr
    with make_engine(url).connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def test_doctor_checks_slack_aws_and_the_database_live(bot_env, aws, slack):
    """Every line ✓ but what moto cannot answer (iam:SimulatePrincipalPolicy: the Stubber
    tests in tests/aws/test_doctor.py cover it); then each kind of ✗, and the exit code."""
    aws.create_group(GroupName="staging-admins")
    assert run_bot_command(bot_env, "migrate").returncode == 0
    result = run_bot_command(bot_env, "doctor")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"✓ config {bot_env['ACCESSBOT_CONFIG']}: 3 resources"
    failed = [line for line in lines if line.startswith("✗")]
    assert failed == [next(line for line in lines if line.startswith(
        "✗ IAM permissions: not checked (IAM did not answer the simulation"))]
    for expected in ("✓ Slack token: @accessbot in Fake", "✓ admin channel C0SECURITY",
                     "✓ approvers and requesters: 2 Slack users",
                     "✓ AWS identity: arn:aws:sts::123456789012:user/moto",
                     "✓ IAM group staging-admins exists", "✓ IAM role ProdReadOnly exists",
                     "✓ database "):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert lines[-1] == f"1 of {len(lines) - 1} checks failed"
    assert not result.stderr  # no log noise, no traceback

    slack.scopes.remove("chat:write")
    slack.channels_without_bot.add("C0APPROVALS")
    aws.delete_role(RoleName="ProdReadOnly")
    failed = [line for line in run_bot_command(bot_env, "doctor").stdout.splitlines()
              if line.startswith("✗")]
    assert [line.split(":")[0] for line in failed] == [
        "✗ Slack scopes", "✗ approval channel C0APPROVALS (#c0approvals)",
        "✗ IAM role ProdReadOnly",
        "✗ IAM permissions"]


def test_the_audit_command_tells_the_loop_in_sentences(bot, sender, slack, aws, bot_env):
    slack.add_user("U0ALICE", email="alice@example.com", name="Alice")
    slack.add_user("U0BOB", email="bob@example.com", name="Bob")
    request_id = request_via_command(sender, slack, text="prod-admins 2s deploy hotfix 123")
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    slack.wait_for(lambda: "alice" in members(aws))
    slack.wait_for(lambda: "alice" not in members(aws), timeout=10)
    dm_containing(slack, "U0ALICE", "access to prod-admins ended")

    result = run_bot_command(bot_env, "audit")
    assert result.returncode == 0, result.stderr
    said = [line.split("UTC  ", 1)[1] for line in result.stdout.splitlines()]
    assert said[:4] == [
        f"Alice asked for prod-admins for 2s (request #{request_id}): “deploy hotfix 123”",
        f"accessbot asked prod-admins's approvers to decide Alice's request #{request_id}",
        f"Bob approved Alice's request #{request_id}: prod-admins for 2s",
        said[3]]
    assert said[3].startswith("accessbot granted Alice prod-admins as IAM user alice, until ")
    assert said[-1] == "accessbot revoked Alice's prod-admins (expired)"

    machine = run_bot_command(bot_env, "audit", "--json", "--request", str(request_id))
    rows = [json.loads(line) for line in machine.stdout.splitlines()]
    assert [r["action"] for r in rows][:4] == ["requested", "announced", "approved", "granted"]
    assert rows[2]["actor"] == "U0BOB" and rows[2]["text"].startswith("Bob approved")
    assert run_bot_command(bot_env, "audit", "--user", "U0CAROL").stdout == ""

    verified = run_bot_command(bot_env, "audit", "verify")  # the worker seals every 15 s
    assert verified.returncode == 0 and verified.stdout.startswith("audit trail intact: ")

    bad = run_bot_command(bot_env, "audit", "--since", "last tuesday")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "accessbot: configuration error: --since: 'last tuesday' is neither a duration "
        "(7d, 12h) nor a date (2026-12-01)")


# -- the two processes ------------------------------------------------------------------

def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_clean_stop_ends_the_worker_too(start_bot):
    bot = start_bot()
    worker = bot.worker_pid()
    bot.stop()
    assert bot.process.returncode == 0
    assert not process_alive(worker)


def test_the_worker_dies_with_a_crashed_web_process(start_bot):
    """No orphan keeps granting and revoking beside the restarted bot."""
    bot = start_bot()
    worker = bot.worker_pid()
    bot.crash()
    assert wait_for(lambda: not process_alive(worker), timeout=5)


def test_the_bot_stops_when_its_worker_dies(start_bot):
    """For a supervisor to restart it whole: a bot that acknowledged work nobody does
    would be worse than one that is down."""
    bot = start_bot()
    os.kill(bot.worker_pid(), signal.SIGKILL)
    assert bot.process.wait(timeout=10) == 1
    assert "the worker process exited (code -9)" in bot.log()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, bot_env):
    if request.param == "sqlite":
        yield bot_env["DATABASE_URL"]
        return
    server = request.getfixturevalue("postgres_server")
    url = create_database(server)
    yield url
    drop_database(server, url)


@pytest.mark.parametrize("which", ["worker", "bot"])
def test_requests_acknowledged_just_before_the_worker_is_killed_all_reach_the_approvers(
        start_bot, slack, aws, database, which):
    """The inbox: what was acknowledged is in the database before the ack, so a worker, or
    the whole bot, killed (kill -9) as the last ack comes back loses none of it, and
    repeats none."""
    users = [f"U0KILL{i:02d}" for i in range(20)]
    for index, user in enumerate(users):
        aws.create_user(UserName=f"kill{index:02d}",
                        Tags=[{"Key": "slack-user-id", "Value": user}])
    bot = start_bot(DATABASE_URL=database)
    sender = SlackSender(bot.url, slack.url)
    worker = bot.worker_pid()
    if database.startswith("postgres"):
        # stopped, it does nothing until it dies: every request is still to do. (On SQLite
        # a worker stopped inside a write would hold the database's one write lock.)
        os.kill(worker, signal.SIGSTOP)
    replies = post_together([(sender, sender.command_body(user, "prod-admins 1h kill test"))
                             for user in users])
    assert all(r.status == 200 and "Got it" in r.body for r in replies), replies
    _kill(bot, which)

    start_bot(DATABASE_URL=database)
    for user in users:
        # a request recorded but not yet announced when the worker died is announced by
        # the sweep once it is ANNOUNCE_GRACE (60 s) old
        dm_containing(slack, user, "for prod-admins (", timeout=120)
    time.sleep(1.0)  # give a duplicate, if there were one, time to show up
    copies = [m for m in slack.messages("C0APPROVALS") if "kill test" in str(m)]
    assert len(copies) == len(users)  # each once


@pytest.fixture
def slow_aws(moto_server):
    with LatencyProxy(moto_server.url, delay=1.5) as proxy:
        yield proxy


def _kill(bot, which: str) -> None:
    """kill -9 the worker (the web process then exits too), or the web process (the worker
    then exits at once); both are gone when it returns."""
    worker = bot.worker_pid()
    os.kill(worker if which == "worker" else bot.process.pid, signal.SIGKILL)
    bot.process.wait(timeout=15)
    assert wait_for(lambda: not process_alive(worker), timeout=5)


@pytest.mark.parametrize("step", ["decided", "granting", "revoking"])
@pytest.mark.parametrize("which", ["worker", "bot"])
def test_kill_9_at_a_step_then_restart_finishes_it_and_repeats_nothing(
        start_bot, slack, aws, slow_aws, bot_env, step, which):
    """Killed as the decision commits (before AWS has been asked), while AWS is adding the
    user (the decision committed, its result not), or while AWS is removing them: the
    restarted bot finishes the work from the database, and no decision, grant or
    revocation happens twice. (Messages queued in the outbox when the bot dies are
    tests/e2e/test_faults.py's and test_sender.py's.)"""
    bot = start_bot(AWS_ENDPOINT_URL=slow_aws.url)
    sender = SlackSender(bot.url, slack.url)
    sessions = db(bot_env)
    request_id = request_via_command(sender, slack, text="prod-admins 8s crash test")
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    if step == "decided":
        def decided():
            with sessions() as session:
                return session.scalar(select(AccessRequest.status).where(
                    AccessRequest.id == request_id)) is RequestStatus.APPROVED
        slack.wait_for(decided, timeout=30, interval=0.005)
        assert "alice" not in members(aws)  # each AWS call takes 1.5 s
    else:
        wanted = "RemoveUserFromGroup" if step == "revoking" else "AddUserToGroup"
        slack.wait_for(lambda: wanted in slow_aws.actions, timeout=30)
    _kill(bot, which)

    start_bot(AWS_ENDPOINT_URL=slow_aws.url)

    def ended():  # the restarted worker takes over the dead one's leases, the sweep finishes
        with sessions() as session:
            status = session.scalar(select(Grant.status).where(Grant.request_id == request_id))
        return status in (GrantStatus.REVOKED, GrantStatus.FAILED) and not members(aws)

    slack.wait_for(ended, timeout=120)
    with sessions() as session:
        actions = [e.action for e in session.scalars(
            select(AuditEvent).where(AuditEvent.request_id == request_id)
            .order_by(AuditEvent.id))]
    assert actions.count("approved") == actions.count("revoked") == 1, actions
    assert actions.count("granted") <= 1, actions
    # the requester hears how it ended: at most the one message the kill interrupted, again
    told = slack.wait_for(lambda: [c for c in slack.calls("chat.postMessage")
                                   if c.args.get("channel") == "U0ALICE"
                                   and ("ended" in c.args.get("text", "")
                                        or "could not" in c.args.get("text", ""))],
                          timeout=60)
    assert 1 <= len(told) <= 2, [c.args.get("text") for c in told]


@pytest.mark.parametrize("which", ["worker", "bot"])
def test_messages_queued_when_the_bot_is_killed_are_all_delivered_after_the_restart(
        start_bot, slack, aws, bot_env, which):
    """Slack refuses everything, so messages pile up in the outbox; kill -9; Slack comes
    back with the restarted bot, and every owed message arrives, none twice."""
    bot = start_bot()
    sender = SlackSender(bot.url, slack.url)
    request_id = request_via_command(sender, slack, text="prod-admins 1h while slack is down")
    slack.make_chaotic(1.0)
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    slack.wait_for(lambda: "alice" in members(aws), timeout=30)
    sessions = db(bot_env)

    def pending() -> int:
        with sessions() as session:
            return session.scalar(select(func.count(OutboxMessage.id)).where(
                OutboxMessage.status == OutboxStatus.PENDING))

    slack.wait_for(lambda: pending() >= 3, timeout=30)  # grant DM, copy updates, replies
    posted_before = len(slack.calls("chat.postMessage"))
    _kill(bot, which)
    slack.make_chaotic(0.0)

    start_bot()
    # the DM first: when the grant's result was not yet committed at the kill, its DM is
    # owed only after the restart, and "nothing pending" before then would count it unsent
    dm_containing(slack, "U0ALICE", "You have prod-admins until", timeout=60)
    slack.wait_for(lambda: pending() == 0, timeout=60)
    with sessions() as session:
        sent = session.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.ts.is_not(None),
            ~OutboxMessage.kind.endswith("_update")))
        retried = session.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.attempts > 1,
            ~OutboxMessage.kind.endswith("_update")))
        known = set(session.scalars(select(ApprovalMessage.ts)))
        failures = [(r.id, r.kind, r.attempts, r.last_error) for r in session.scalars(
            select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED))]
    assert failures == []
    # every post Slack took is a row marked sent, but those the kill interrupted: a post
    # Slack took whose mark the kill cut off goes out again. The sender sends up to 8 side
    # by side, so there are at most as many repeats as rows tried more than once.
    posts = [(c.args.get("channel"), c.args.get("text", "")[:50])
             for c in slack.calls("chat.postMessage")]
    repeats = len(posts) - sent
    assert 0 <= repeats <= min(retried, 8), (posted_before, sent, retried, posts)
    copies = [m for channel in ("C0APPROVALS", "D0BOB", "D0DAVE")
              for m in slack.messages(channel) if "thread_ts" not in m]
    undecided = [m for m in copies if "Approved by @U0BOB" not in render_text(m).replace("*", "")]
    # every copy the database knows shows the decision; a repeated copy's first post, whose
    # ts died with the worker, is the one that may not (a click on it is still re-checked)
    assert copies and not [m for m in undecided if m["ts"] in known], undecided
    assert len(undecided) <= repeats, undecided


@pytest.mark.postgres
def test_the_bot_rides_out_a_postgres_restart(postgres_server, bot_env, start_bot, slack,
                                              aws):
    """Every connection cut and refused for a moment, as in a Postgres restart, under the
    running bot: it reconnects without restarting and finishes what was pending."""
    url = create_database(postgres_server)
    try:
        with TcpProxy(_address(url)) as proxy:
            bot = start_bot(DATABASE_URL=proxy.url(url))
            sender = SlackSender(bot.url, slack.url)
            request_id = request_via_command(sender, slack, text="prod-admins 4s restart")
            sender.click("U0BOB", ActionId.APPROVE, str(request_id))
            dm_containing(slack, "U0ALICE", "You have prod-admins until", timeout=30)
            with proxy.refusing():
                proxy.drop_all()
                time.sleep(2.0)  # the grant expires about now, with the database away
            dm_containing(slack, "U0ALICE", "access to prod-admins ended", timeout=60)
            assert members(aws) == set()
            assert bot.process.poll() is None  # the same process, never restarted
            assert "Got it" in sender.command("U0ALICE", "prod-admins 1h after it").body
            dm_containing(slack, "U0ALICE", f"Request #{request_id + 1} for prod-admins (1h)",
                          timeout=30)
    finally:
        drop_database(postgres_server, url)


def _address(url: str) -> tuple[str, int]:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    return parts.host, parts.port or 5432
