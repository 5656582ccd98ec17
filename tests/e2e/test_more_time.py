""""Ask for more time" over real HTTP: the button, the modal, the approval, IAM and the timers."""

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.aws.iam import iso_utc
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import AuditEvent, Grant, GrantStatus
from accessbot.services.clock import utcnow
from tests.e2e.test_loop import db, dm_containing, members, read, refusal, request_via_command

pytestmark = pytest.mark.e2e


def form(duration: str, reason: str) -> dict:
    return {
        BlockId.DURATION: {ActionId.DURATION_INPUT: {"type": "plain_text_input",
                                                     "value": duration}},
        BlockId.REASON: {ActionId.REASON_INPUT: {"type": "plain_text_input", "value": reason}},
    }


def utc(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def granted(sender, slack, aws, text: str) -> tuple[int, int]:
    """Request and approve; return (grant id, index of the grant DM among alice's DMs)."""
    request_id = request_via_command(sender, slack, text=text)
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))

    def grant_dm():
        for index, message in enumerate(slack.dm("U0ALICE")):
            if "[Ask for more time]" in read(message):
                return index, message
        return None

    index, message = slack.wait_for(grant_dm)
    assert "[I'm done, revoke now] [Ask for more time]" in read(message)
    buttons = {e["action_id"]: e["value"] for b in message["blocks"] if b["type"] == "actions"
               for e in b["elements"]}
    return int(buttons[ActionId.EXTEND_GRANT]), index


def open_more_time_form(sender, slack, grant_id: int) -> dict:
    assert sender.click("U0ALICE", ActionId.EXTEND_GRANT, str(grant_id)).status == 200
    opened = slack.wait_for(lambda: [c for c in slack.calls("views.open")
                                     if c.args["view"]["callback_id"] == ViewId.EXTEND_FORM])
    view = opened[-1].args["view"]
    assert view["private_metadata"] == str(grant_id)
    return view


def ask_for_more_time(sender, slack, grant_id: int, duration: str, resource: str) -> int:
    """Submit the form; return the extension's request id once the approvers have it."""
    reply = sender.submit_view("U0ALICE", ViewId.EXTEND_FORM, form(duration, "one more step"),
                               private_metadata=str(grant_id))
    assert reply.status == 200 and reply.body == ""
    dm = dm_containing(slack, "U0ALICE", f"for {duration} more on {resource} is waiting")
    return int(dm.split("Request #")[1].split()[0])


def expiry_of(bot_env, grant_id: int):
    with db(bot_env)() as session:
        return session.get(Grant, grant_id).expires_at


def test_more_time_moves_the_revocation_to_the_new_expiry(bot, sender, slack, aws, bot_env):
    grant_id, grant_dm = granted(sender, slack, aws, "prod-admins 8s deploy hotfix 123")
    assert "alice" in members(aws)
    old = expiry_of(bot_env, grant_id)

    open_more_time_form(sender, slack, grant_id)
    extension_id = ask_for_more_time(sender, slack, grant_id, "6s", "prod-admins")
    approval = slack.wait_for(lambda: next(
        (m for m in slack.dm("U0BOB") if f"Extension request #{extension_id}" in read(m)), None))
    assert (f"extension of grant #{grant_id}: access currently runs until {utc(old)}"
            in read(approval))
    assert "@U0ALICE asks for 6s more on prod-admins" in read(approval)
    sender.click("U0BOB", ActionId.APPROVE, str(extension_id))

    new = old + timedelta(seconds=6)
    dm_containing(slack, "U0ALICE", f"you now have prod-admins until {utc(new)}")
    slack.wait_for(lambda: f"You have prod-admins until {utc(new)}"
                   in read(slack.dm("U0ALICE")[grant_dm]))  # updated in place
    assert expiry_of(bot_env, grant_id) == new

    # (8 s and 6 s, not 4 s and 3 s: on a machine running two suites at once, this check
    # once came after the new expiry too, and found the grant rightly revoked)
    time.sleep(max(0.0, (old - utcnow()).total_seconds()) + 1.0)
    assert utcnow() < new - timedelta(seconds=1), "too slow to tell the two expiries apart"
    assert "alice" in members(aws)  # the old expiry has passed: still a member
    slack.wait_for(lambda: "alice" not in members(aws), timeout=10)
    dm_containing(slack, "U0ALICE", "access to prod-admins ended")
    with db(bot_env)() as session:
        grant = session.get(Grant, grant_id)
        assert grant.status is GrantStatus.REVOKED and grant.expires_at == new
        lag = (grant.revoked_at - new).total_seconds()
        assert 0 <= lag < 2.0, lag
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count("extended") == 1 and actions.index("extended") < actions.index("revoked")


def test_more_time_on_a_role_moves_the_iam_expiry(bot, sender, slack, aws, bot_env):
    grant_id, _grant_dm = granted(sender, slack, aws, "prod-readonly 1h read the logs")
    old = expiry_of(bot_env, grant_id)
    assert current_time_condition(aws) == iso_utc(old)

    assert sender.click("U0BOB", ActionId.EXTEND_GRANT, str(grant_id)).status == 200
    assert "Only the person who holds this access" in refusal(slack)
    open_more_time_form(sender, slack, grant_id)
    bad = sender.submit_view("U0ALICE", ViewId.EXTEND_FORM, form("soon", "more logs"),
                             private_metadata=str(grant_id))
    assert bad.json()["response_action"] == "errors"
    assert "is not a duration" in bad.json()["errors"][BlockId.DURATION]
    extension_id = ask_for_more_time(sender, slack, grant_id, "30m", "prod-readonly")
    sender.click("U0BOB", ActionId.APPROVE, str(extension_id))

    new = old + timedelta(minutes=30)
    dm_containing(slack, "U0ALICE", f"you now have prod-readonly until {utc(new)}")
    assert current_time_condition(aws) == iso_utc(new)
    with db(bot_env)() as session:
        assert session.get(Grant, grant_id).status is GrantStatus.ACTIVE


def current_time_condition(aws) -> str:
    [name] = aws.list_user_policies(UserName="alice")["PolicyNames"]
    document = aws.get_user_policy(UserName="alice", PolicyName=name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    return document["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"]
