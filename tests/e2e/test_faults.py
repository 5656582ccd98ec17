"""The whole loop while Slack and AWS misbehave: a fifth of Slack calls answered 429, 500
or 503 (some hang past the client's timeout), a fifth of IAM calls Throttling or 500.
Every owed message arrives, every copy is updated, every grant is applied and revoked
once."""

import json

import pytest
from sqlalchemy import func, select

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import AuditEvent, Grant, GrantStatus, OutboxMessage, OutboxStatus
from tests.e2e.test_loop import db, members, read, texts
from tests.fakes.harness import SlackSender
from tests.fakes.latency_proxy import LatencyProxy

pytestmark = pytest.mark.e2e

PATIENCE = 90.0  # backoffs of a few seconds, a hang of 11 s, lookups retried by the sweep


@pytest.fixture
def faulty_aws(moto_server):
    with LatencyProxy(moto_server.url, faults=0.2, seed=7) as proxy:
        yield proxy


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


def test_the_loop_keeps_every_promise_under_faults(start_bot, slack, aws, faulty_aws, bot_env):
    for user in ("erin", "frank"):
        aws.create_user(UserName=user, Tags=[{"Key": "slack-user-id",
                                              "Value": f"U0{user.upper()}"}])
    bot = start_bot(AWS_ENDPOINT_URL=faulty_aws.url)
    sender = SlackSender(bot.url, slack.url)
    slack.make_chaotic(0.2, hangs=0.02, seed=3)

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

    # "I'm done"
    frank = request(sender, slack, "U0FRANK", "prod-admins 1h quick look")
    sender.click("U0BOB", ActionId.APPROVE, str(frank))
    grant_dm = slack.wait_for(lambda: next(
        (m for m in slack.dm("U0FRANK") if "[I'm done, revoke now]" in read(m)), None),
        timeout=PATIENCE)
    button = next(e for b in grant_dm["blocks"] if b["type"] == "actions"
                  for e in b["elements"] if e["action_id"] == ActionId.END_GRANT)
    sender.click("U0FRANK", ActionId.END_GRANT, button["value"])
    wait_dm(slack, "U0FRANK", "ended early by the requester")
    slack.wait_for(lambda: not members(aws), timeout=PATIENCE)

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
