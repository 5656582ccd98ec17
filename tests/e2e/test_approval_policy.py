"""The approval policy over real HTTP, with one bot for every scenario: 2-of-2 approvals
(and a resource's own approval channel), an approver given as a Slack user group, and
Approve for less."""

import json

import pytest
import yaml

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import dm_containing, members, read, refusal
from tests.fakes.harness import SlackSender

pytestmark = pytest.mark.e2e

CONFIG = {**E2E_CONFIG, "resources": {
    **E2E_CONFIG["resources"],
    "pair-admins": {"kind": "iam_group", "group": "pair-admins",
                    "approvers": ["U0BOB", "U0DAVE"], "approvals_required": 2,
                    "approval_channel": "C0PAIR", "min_duration": "1s"},
    "sre-admins": {"kind": "iam_group", "group": "sre-admins", "approvers": ["S0SRE"],
                   "min_duration": "1s"},
}}


def request(sender, slack, text: str, copies: list[str]) -> int:
    """alice asks; the request id once each of `copies` (channels) has its copy."""
    assert sender.command("U0ALICE", text).status == 200
    resource = text.split()[0]
    dm = dm_containing(slack, "U0ALICE", f"for {resource} (")
    request_id = int(dm.split("Request #")[1].split()[0])
    for channel in copies:
        copy_of(slack, channel, request_id)
    return request_id


def copy_of(slack, channel: str, request_id: int, showing: str = "") -> str:
    """The copy of the request in `channel`, once it shows `showing`."""
    return slack.wait_for(lambda: next(
        (read(m) for m in slack.messages(channel)
         if f"request #{request_id}" in read(m) and "thread_ts" not in m
         and showing in read(m)), None))


def test_approval_policy(start_bot, slack, aws, tmp_path):
    for group in ("pair-admins", "sre-admins"):
        aws.create_group(GroupName=group)
    slack.set_usergroup("S0SRE", ["U0CAROL"])
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    bot = start_bot(ACCESSBOT_CONFIG=str(config))
    sender = SlackSender(bot.url, slack.url)

    two_of_two(sender, slack, aws)
    user_group_approver(sender, slack, aws)
    approve_for_less(sender, slack, aws)


def two_of_two(sender, slack, aws):
    copies = ["C0PAIR", "D0BOB", "D0DAVE"]  # the resource's own channel, not C0APPROVALS
    request_id = request(sender, slack, "pair-admins 30s pair on the migration", copies)
    assert not any(f"#{request_id}" in read(m) for m in slack.messages("C0APPROVALS"))
    dm_containing(slack, "U0ALICE", "(2 approvals needed)")

    sender.click("U0BOB", ActionId.APPROVE, str(request_id))
    for channel in copies:
        shown = copy_of(slack, channel, request_id, "1 of 2 approvals: @U0BOB")
        assert "[Approve] [Approve for less…] [Deny]" in shown
    assert "alice" not in members(aws, "pair-admins")

    sender.click("U0DAVE", ActionId.APPROVE, str(request_id))
    slack.wait_for(lambda: "alice" in members(aws, "pair-admins"))
    for channel in copies:
        shown = copy_of(slack, channel, request_id, "Approved by @U0DAVE")
        assert "2 of 2 approvals: @U0BOB, @U0DAVE" in shown and "[Approve]" not in shown


def user_group_approver(sender, slack, aws):
    request_id = request(sender, slack, "sre-admins 30s rotate the certificates",
                         ["C0APPROVALS", "D0CAROL"])  # S0SRE's member has a copy
    before = len(slack.calls("response_url"))
    sender.click("U0BOB", ActionId.APPROVE, str(request_id))  # not in S0SRE
    slack.wait_for(lambda: len(slack.calls("response_url")) > before)
    assert "Only the approvers of sre-admins" in refusal(slack)

    sender.click("U0CAROL", ActionId.APPROVE, str(request_id))
    slack.wait_for(lambda: "alice" in members(aws, "sre-admins"))
    copy_of(slack, "D0CAROL", request_id, "Approved by @U0CAROL")
    assert [c.args["usergroup"] for c in slack.calls("usergroups.users.list")][:1] == ["S0SRE"]


def approve_for_less(sender, slack, aws):
    request_id = request(sender, slack, "prod-admins 2h upgrade the cluster",
                         ["C0APPROVALS", "D0BOB", "D0DAVE"])

    assert sender.click("U0BOB", ActionId.APPROVE_LESS, str(request_id)).status == 200
    opened = slack.wait_for(lambda: [c for c in slack.calls("views.open")
                                     if c.args["view"]["callback_id"]
                                     == ViewId.APPROVE_LESS_FORM])
    metadata = opened[-1].args["view"]["private_metadata"]

    def submit(duration: str):
        return sender.submit_view("U0BOB", ViewId.APPROVE_LESS_FORM, {
            BlockId.DURATION: {ActionId.DURATION_INPUT: {"type": "plain_text_input",
                                                         "value": duration}}},
            private_metadata=metadata)

    refused = submit("3h")
    assert "At most the 2h asked" in json.loads(refused.body)["errors"][BlockId.DURATION]
    assert "alice" not in members(aws)

    assert submit("3s").status == 200
    slack.wait_for(lambda: "alice" in members(aws))
    dm_containing(slack, "U0ALICE", "Approved for 3s of the 2h asked")
    for channel in ("C0APPROVALS", "D0BOB", "D0DAVE"):
        shown = copy_of(slack, channel, request_id, "approved for 3s of the 2h asked")
        assert "[Approve]" not in shown
    slack.wait_for(lambda: any("approved for 3s of the 2h asked" in read(m)
                               and "thread_ts" in m for m in slack.messages("C0APPROVALS")))
    slack.wait_for(lambda: "alice" not in members(aws), timeout=10)  # it lasted 3s
