"""A request's and a grant's life over real HTTP, with one bot for every scenario: a reminder
reaches a silent approver, the requester cancels (every copy says Cancelled), and an admin
revokes a live grant (IAM loses the member; the holder hears who and why)."""

import pytest
import yaml

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import AuditEvent, Grant, GrantStatus
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import db, dm_containing, members, read, request_via_command
from tests.fakes.harness import BOT_TOKEN, SIGNING_SECRET, BotProcess, SlackSender
from tests.fakes.slack_api import FakeSlack, dm_channel

pytestmark = pytest.mark.e2e

ADMIN = "U0SECLEAD"
CONFIG = {
    **E2E_CONFIG,
    "admins": [ADMIN],
    "resources": {
        **E2E_CONFIG["resources"],
        "sandbox": {"kind": "iam_group", "group": "sandbox", "approvers": ["U0DAVE"],
                    "remind_after": "1s"},
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, moto_server):
    """One bot, its fake Slack and a clean account, for every scenario of this module."""
    moto_server.reset()
    iam = moto_server.iam()
    iam.create_user(UserName="alice", Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    iam.create_user(UserName="carol", Tags=[{"Key": "email", "Value": "carol@example.com"}])
    iam.create_group(GroupName="prod-admins")
    iam.create_group(GroupName="sandbox")
    tmp = tmp_path_factory.mktemp("lifecycle")
    config = tmp / "accessbot.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    with FakeSlack(users={"U0ALICE": {"email": "alice@example.com"},
                          "U0CAROL": {"email": "carol@example.com"},
                          "U0BOB": {"email": "bob@example.com"},
                          "U0DAVE": {"email": "dave@example.com"}}) as slack:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": slack.api_url, "DATABASE_URL": f"sqlite:///{tmp / 'bot.db'}",
               "ACCESSBOT_CONFIG": str(config), **moto_server.env()}
        bot = BotProcess(env, tmp / "bot.log").start()
        try:
            yield SlackSender(bot.url, slack.url), slack, iam, env
        finally:
            bot.stop()


def buttons(message: dict) -> dict[str, str]:
    return {e["action_id"]: e["value"] for b in message.get("blocks") or []
            if b["type"] == "actions" for e in b["elements"]}


def copies(slack, request_id: int) -> list[dict]:
    """The approval messages of a request: the channel's and each approver's DM."""
    return [m for channel in ("C0APPROVALS", "D0BOB", "D0DAVE")
            for m in slack.messages(channel)
            if f"request #{request_id}" in read(m) and not m.get("thread_ts")]


def test_a_silent_approver_is_reminded(world):
    sender, slack, _, _ = world
    reply = sender.command("U0ALICE", "sandbox 1h try the new pipeline")
    assert reply.status == 200

    reminder = dm_containing(slack, "U0DAVE", "reminder 1", timeout=20)
    assert "@U0DAVE reminder 1: @U0ALICE is waiting for a decision on request #" in reminder
    assert not [m for m in slack.dm("U0BOB") if "reminder" in read(m)]  # not sandbox's


def test_the_requester_cancels_and_every_copy_says_cancelled(world):
    sender, slack, _, env = world
    request_id = request_via_command(sender, slack, user="U0CAROL",
                                     text="prod-admins 1h look at the incident")
    waiting = next(m for m in slack.dm("U0CAROL") if f"Request #{request_id}" in read(m))
    assert buttons(waiting) == {ActionId.CANCEL_REQUEST: str(request_id)}

    sender.click("U0CAROL", ActionId.CANCEL_REQUEST, str(request_id),
                 channel=dm_channel("U0CAROL"), block_id=BlockId.WAITING_ACTIONS)

    slack.wait_for(lambda: all("Cancelled by @U0CAROL" in read(m)
                               for m in copies(slack, request_id) + [
                                   next(m for m in slack.dm("U0CAROL")
                                        if f"Request #{request_id}" in read(m))]))
    found = copies(slack, request_id)
    assert len(found) == 3 and not any(buttons(m) for m in found)
    assert not buttons(next(m for m in slack.dm("U0CAROL")
                            if f"Request #{request_id}" in read(m)))
    with db(env)() as session:
        assert session.query(AuditEvent).filter_by(request_id=request_id,
                                                    action="cancelled").count() == 1


def test_an_admin_revokes_a_live_grant_and_the_holder_hears_who_and_why(world):
    sender, slack, iam, env = world
    request_id = request_via_command(sender, slack, text="prod-admins 1h deploy hotfix 123")
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    slack.wait_for(lambda: "alice" in members(iam))
    channel_copy = slack.wait_for(lambda: next(
        (m for m in copies(slack, request_id) if ActionId.REVOKE_GRANT in buttons(m)), None))
    grant_id = buttons(channel_copy)[ActionId.REVOKE_GRANT]

    sender.click(ADMIN, ActionId.REVOKE_GRANT, grant_id, block_id=BlockId.REVOKE)
    opened = slack.wait_for(lambda: [c for c in slack.calls("views.open")
                                     if c.args["view"]["callback_id"] == ViewId.REVOKE_FORM])
    assert opened[-1].args["view"]["private_metadata"] == grant_id
    values = {BlockId.REVOKE_REASON: {ActionId.REVOKE_REASON_INPUT: {
        "type": "plain_text_input", "value": "the incident is over"}}}
    assert sender.submit_view(ADMIN, ViewId.REVOKE_FORM, values,
                              private_metadata=grant_id).status == 200

    slack.wait_for(lambda: "alice" not in members(iam))
    ended = dm_containing(slack, "U0ALICE", "(revoked by @U0SECLEAD)")
    assert "the incident is over" in ended
    slack.wait_for(lambda: all("Access revoked by @U0SECLEAD" in read(m)
                               and not buttons(m) for m in copies(slack, request_id)))
    with db(env)() as session:
        grant = session.get(Grant, int(grant_id))
        assert (grant.status, grant.revoked_by) == (GrantStatus.REVOKED, ADMIN)
