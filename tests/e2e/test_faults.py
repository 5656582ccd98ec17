"""The whole loop while Slack and AWS misbehave: a fifth of Slack calls answered 429, 500
or 503 (some hang past the client's timeout), a fifth of IAM calls Throttling or 500.
Request, approve, grant, warn, revoke; deny; more time; "I'm done"; a stale key's DM and
its Deactivate button. Every owed message arrives, every copy is updated, every grant is
applied and revoked once."""

import json
import time
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import func, select

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import (
    AuditEvent,
    Grant,
    GrantStatus,
    JobRun,
    OutboxMessage,
    OutboxStatus,
)
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_hygiene import (
    HYGIENE,
    STALE_AFTER,
    create_key,
    deactivate_button,
    digest_posts,
    key_status,
    run_stale_credentials,
)
from tests.e2e.test_loop import db, members, read, texts
from tests.e2e.test_more_time import form
from tests.fakes.harness import SlackSender
from tests.fakes.latency_proxy import LatencyProxy
from tests.fakes.slack_api import dm_channel, render_text

pytestmark = pytest.mark.e2e

PATIENCE = 90.0  # backoffs of a few seconds, a hang of 11 s, lookups retried by the sweep
FAULTS = 0.2  # the share of Slack calls, and of IAM calls, refused


@pytest.fixture
def faulty_aws(moto_server):
    with LatencyProxy(moto_server.url, faults=FAULTS, seed=7) as proxy:
        yield proxy


@pytest.fixture
def stale_soon_env(bot_env, tmp_path):
    """bot_env with hygiene thresholds of a second (for one run of the job): a fresh access
    key is soon stale."""
    config = tmp_path / "stale-soon.yaml"
    config.write_text(yaml.safe_dump({**E2E_CONFIG, "hygiene": HYGIENE}))
    return {**bot_env, "ACCESSBOT_CONFIG": str(config)}


def wait_dm(slack, user, needle):
    return slack.wait_for(lambda: next((t for t in texts(slack, user) if needle in t), None),
                          timeout=PATIENCE)


def warning_moot_or_delivered(slack, bot_env) -> None:
    """The expiry warning (2 s before the end of a 12 s grant) arrived, or Slack refused it
    until the grant had ended: then it was dropped unsent, on purpose (the end DM says
    it), and its row is done, not lost."""
    if any("ends in about" in t for t in texts(slack, "U0ALICE")):
        return
    with db(bot_env)() as session:
        [warning] = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "grant_expiring")).all()
        grant = session.scalars(select(Grant)).first()
        assert warning.status is OutboxStatus.SENT and warning.attempts > 1
        assert warning.done_at >= grant.expires_at


def start_up_runs_over(env: dict, names: tuple[str, ...]) -> None:
    """The bot's start-up runs of these jobs have ended, finished or given up under the
    faults (their lease released): a run started now is not refused as already running."""
    sessions = db(env)

    def over():
        with sessions() as session:
            runs = session.scalars(select(JobRun).where(JobRun.name.in_(names))).all()
            return len(runs) == len(names) and all(r.lease_owner is None for r in runs)

    deadline = time.monotonic() + PATIENCE
    while not over():
        assert time.monotonic() < deadline, f"the start-up runs of {names} did not end"
        time.sleep(0.1)


def request(sender, slack, user, text):
    assert "Got it" in sender.command(user, text).body
    dm = wait_dm(slack, user, "Request #")
    return int(dm.split("Request #")[1].split()[0])


def copies_say(slack, request_id, words):
    """Every approval copy of the request reads `words` and offers no buttons."""
    found = [m for channel in ("C0APPROVALS", "D0BOB", "D0DAVE")
             for m in slack.messages(channel) if f"#{request_id}" in read(m)
             and "thread_ts" not in m]
    return len(found) >= 2 and all(words in read(m) and "[Approve]" not in read(m)
                                   for m in found)


def test_the_loop_keeps_every_promise_under_faults(start_bot, slack, aws, faulty_aws, bot_env,
                                                   stale_soon_env):
    for user in ("erin", "frank"):
        aws.create_user(UserName=user, Tags=[{"Key": "slack-user-id",
                                              "Value": f"U0{user.upper()}"}])
    bot = start_bot(AWS_ENDPOINT_URL=faulty_aws.url)
    sender = SlackSender(bot.url, slack.url)
    slack.make_chaotic(FAULTS, hangs=0.02, seed=3)

    # request -> approve -> grant -> warn -> revoke
    # 12 s: room for one failed AddUserToGroup (three attempts, all refused: 0.8 %) and
    # its retry 5 s later; in 6 s such a grant ended before it was in place
    alice = request(sender, slack, "U0ALICE", "prod-admins 12s under fire")
    sender.click("U0BOB", ActionId.APPROVE, str(alice))
    wait_dm(slack, "U0ALICE", "You have prod-admins until")
    wait_dm(slack, "U0ALICE", "access to prod-admins ended")
    warning_moot_or_delivered(slack, bot_env)
    slack.wait_for(lambda: copies_say(slack, alice, "Approved by @U0BOB"), timeout=PATIENCE)

    # deny, with a reason
    erin = request(sender, slack, "U0ERIN", "prod-admins 1h not today")
    sender.click("U0DAVE", ActionId.DENY, str(erin))
    slack.wait_for(lambda: slack.calls("views.open"), timeout=PATIENCE)
    sender.submit_view("U0DAVE", ViewId.DENY_FORM, {
        BlockId.DENY_REASON: {ActionId.DENY_REASON_INPUT: {"type": "plain_text_input",
                                                           "value": "use staging"}}},
        private_metadata=str(erin))
    wait_dm(slack, "U0ERIN", "use staging")
    slack.wait_for(lambda: copies_say(slack, erin, "Denied by @U0DAVE"), timeout=PATIENCE)

    # more time, then "I'm done"
    frank = request(sender, slack, "U0FRANK", "prod-admins 1h quick look")
    sender.click("U0BOB", ActionId.APPROVE, str(frank))
    grant_dm = slack.wait_for(lambda: next(
        (m for m in slack.dm("U0FRANK") if "[I'm done, revoke now]" in read(m)), None),
        timeout=PATIENCE)
    buttons = {e["action_id"]: e["value"] for b in grant_dm["blocks"] if b["type"] == "actions"
               for e in b["elements"]}
    grant_id = int(buttons[ActionId.EXTEND_GRANT])
    with db(bot_env)() as session:
        first_expiry = session.get(Grant, grant_id).expires_at
    sender.click("U0FRANK", ActionId.EXTEND_GRANT, str(grant_id))
    slack.wait_for(lambda: [c for c in slack.calls("views.open")
                            if c.args["view"]["callback_id"] == ViewId.EXTEND_FORM],
                   timeout=PATIENCE)
    assert sender.submit_view("U0FRANK", ViewId.EXTEND_FORM, form("30m", "one more step"),
                              private_metadata=str(grant_id)).status == 200
    asked = wait_dm(slack, "U0FRANK", "for 30m more on prod-admins is waiting")
    extension = int(asked.split("Request #")[1].split()[0])
    sender.click("U0DAVE", ActionId.APPROVE, str(extension))
    wait_dm(slack, "U0FRANK", "you now have prod-admins until")
    slack.wait_for(lambda: copies_say(slack, extension, "Approved by @U0DAVE"), timeout=PATIENCE)
    with db(bot_env)() as session:
        assert session.get(Grant, grant_id).expires_at == first_expiry + timedelta(minutes=30)
    sender.click("U0FRANK", ActionId.END_GRANT, buttons[ActionId.END_GRANT])
    wait_dm(slack, "U0FRANK", "ended early by the requester")
    slack.wait_for(lambda: not members(aws), timeout=PATIENCE)

    # a stale access key: its owner's DM, and the Deactivate button in it
    start_up_runs_over(bot_env, ("stale-credentials", "account-audit"))
    key_id = create_key(aws, "alice")["AccessKeyId"]
    time.sleep(2 * STALE_AFTER.total_seconds() + 0.1)  # the report has whole seconds
    # One run of the job from a process of its own, with thresholds of a second (the bot's,
    # of days, found nothing at its start, and that run is over). Its AWS calls go straight
    # to moto: a run that AWS refused would be tried again at the next 5-minute check,
    # later than this test waits. The DM it owes meets the Slack faults, and the click's
    # UpdateAccessKey the AWS faults.
    assert run_stale_credentials(stale_soon_env)["owners_told"] >= 1
    slack.wait_for(lambda: digest_posts(slack, "U0ALICE"), timeout=PATIENCE)
    stale_dm = next(m for m in slack.dm("U0ALICE") if f"...{key_id[-4:]}" in render_text(m))
    block_id, button = deactivate_button(stale_dm, key_id)
    for attempt in range(3):  # if AWS refused all three tries (0.8 %), alice hears so, again
        answered = f"deactivate-{attempt}"
        sender.click("U0ALICE", ActionId.FINDING_DEACTIVATE, button["value"],
                     channel=dm_channel("U0ALICE"), message_ts=stale_dm["ts"], key=answered,
                     block_id=block_id)
        answer = slack.wait_for(lambda key=answered: next(
            (c.args["text"] for c in slack.calls("response_url") if c.args["key"] == key),
            None), timeout=PATIENCE)
        if f"...{key_id[-4:]} of alice is Inactive" in answer:
            break
    assert key_status(aws, "alice", key_id) == "Inactive"
    slack.wait_for(lambda: "key deactivated by @U0ALICE" in render_text(
        next(m for m in slack.dm("U0ALICE") if m["ts"] == stale_dm["ts"])), timeout=PATIENCE)

    # nothing owed is left: every message sent, none failed
    sessions = db(bot_env)

    def all_delivered():
        with sessions() as session:
            return not session.scalar(select(func.count(OutboxMessage.id)).where(
                OutboxMessage.status == OutboxStatus.PENDING))

    slack.wait_for(all_delivered, timeout=PATIENCE)
    with sessions() as session:
        by_status = dict(session.execute(select(OutboxMessage.status, func.count())
                                         .group_by(OutboxMessage.status)).all())
        sent_posts = session.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.ts.is_not(None),
            ~OutboxMessage.kind.endswith("_update")))  # edits in place are not posts
        assert set(session.scalars(select(Grant.status))) == {GrantStatus.REVOKED}
        for action in ("granted", "revoked"):
            per_grant = session.execute(select(AuditEvent.grant_id, func.count())
                                        .where(AuditEvent.action == action)
                                        .group_by(AuditEvent.grant_id)).all()
            assert sorted(n for _, n in per_grant) == [1, 1], action
    assert OutboxStatus.FAILED not in by_status, by_status
    posted = len([c for c in slack.calls("chat.postMessage")])
    duplicates = posted - sent_posts
    # a hang is a call Slack carried out whose answer was lost: only those may repeat
    assert 0 <= duplicates <= slack.injected.get("hang", 0), (duplicates, slack.injected)
    print(json.dumps({"slack_faults": slack.injected, "aws_faults": faulty_aws.injected,
                      "owed": sum(by_status.values()), "delivered": by_status,
                      "duplicates": duplicates}))
