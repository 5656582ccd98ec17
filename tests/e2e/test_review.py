"""The access review over real connections: a standing member of a managed group (added
in moto outside accessbot) is reviewed, its approver clicks Remove over signed HTTP, and
the member is gone from the group in moto."""

import json

import pytest

from accessbot.handlers.ids import ActionId
from tests.e2e.test_hygiene import response
from tests.fakes.harness import SlackSender, run_bot_command
from tests.fakes.slack_api import dm_channel, render_text

pytestmark = pytest.mark.e2e


def group_members(iam, group: str) -> set[str]:
    return {user["UserName"] for user in iam.get_group(GroupName=group)["Users"]}


def review_buttons(message: dict) -> dict[str, dict]:
    """block_id -> {action_id: button} of each open row."""
    return {block["block_id"]: {e["action_id"]: e for e in block["elements"]}
            for block in message["blocks"]
            if block["type"] == "actions" and block["block_id"].startswith("review-")}


def test_a_standing_member_is_reviewed_and_removed(start_bot, bot_env, aws, slack):
    bot = start_bot()  # review.enabled is false in E2E_CONFIG: run-job starts it
    sender = SlackSender(bot.url, slack.url)

    aws.add_user_to_group(GroupName="prod-admins", UserName="carol")  # outside accessbot
    slack.clear()
    result = run_bot_command(bot_env, "run-job", "access-review")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["job"] == "access-review"
    # carol, and the account root the ProdReadOnly role's trust policy names
    assert output["result"]["own"]["items"] == 2, output

    # both approvers of prod-admins get a copy; carol's row has Keep and Remove
    [bob_copy] = [m for m in slack.dm("U0BOB") if "IAM group prod-admins" in render_text(m)]
    assert len(slack.dm("U0DAVE")) == 1
    assert "carol" in render_text(bob_copy) and "member" in render_text(bob_copy)
    [(block_id, row)] = review_buttons(bob_copy).items()
    assert set(row) == {ActionId.REVIEW_KEEP, ActionId.REVIEW_REMOVE}

    reply = sender.click("U0BOB", ActionId.REVIEW_REMOVE, row[ActionId.REVIEW_REMOVE]["value"],
                         channel=dm_channel("U0BOB"), message_ts=bob_copy["ts"],
                         key="bob-remove", block_id=block_id)
    assert reply.status == 200 and reply.seconds < 1.5, reply
    slack.wait_for(lambda: "carol" not in group_members(aws, "prod-admins"))
    assert response(slack, "bob-remove")["text"].startswith("Removed: IAM user carol")
    # both copies are updated in place: decided, no buttons left
    slack.wait_for(lambda: len(slack.calls("chat.update")) >= 2)
    for approver in ("U0BOB", "U0DAVE"):
        [copy] = [m for m in slack.dm(approver) if "IAM group prod-admins" in render_text(m)]
        assert review_buttons(copy) == {} and "Removed by @U0BOB" in render_text(copy)
