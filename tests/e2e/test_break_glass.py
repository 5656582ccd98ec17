"""Break-glass and approval: none over real HTTP, one bot: the command's confirmation, the
grant in IAM at once, the loud copies (approval channel, approvers, admin channel), the
Reviewed click and its note; and a resource granted without approval."""

import copy
import json

import pytest
import yaml
from sqlalchemy import select

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.models import AuditEvent, BreakGlassReview
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.test_loop import db, members, read

pytestmark = pytest.mark.e2e

CONFIG = copy.deepcopy(E2E_CONFIG)
CONFIG["resources"]["prod-admins"].update(break_glass=True, break_glass_max_duration="1h",
                                          break_glass_review_within="24h")
CONFIG["resources"]["sandbox"] = {"kind": "iam_group", "group": "sandbox", "approval": "none"}


def buttons(message: dict) -> dict[str, dict]:
    return {e["action_id"]: e for b in message.get("blocks", []) if b["type"] == "actions"
            for e in b["elements"]}


def test_break_glass_grants_at_once_loudly_and_an_approver_reviews_it(
        start_bot, bot_env, slack, aws, tmp_path):
    from tests.fakes.harness import SlackSender

    config = tmp_path / "break-glass.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    aws.create_group(GroupName="sandbox")
    bot = start_bot(ACCESSBOT_CONFIG=str(config))
    sender = SlackSender(bot.url, slack.url)

    # the command asks to confirm; nothing happens before the click
    reply = sender.command("U0ALICE", "prod-admins 3h prod is down <!channel> --break-glass")
    assert reply.status == 200
    confirm = buttons(reply.json())[ActionId.BREAK_GLASS_NOW]
    assert "alerts security" in confirm["confirm"]["text"]["text"]
    assert "at most 1h" in read(reply.json())
    assert "alice" not in members(aws)

    assert sender.click("U0ALICE", ActionId.BREAK_GLASS_NOW, confirm["value"]).status == 200
    slack.wait_for(lambda: "alice" in members(aws))

    def loud(channel: str) -> dict:
        return slack.wait_for(lambda: next((m for m in slack.messages(channel)
                                            if "broke the glass" in read(m)), None))

    copies = {channel: loud(channel) for channel in ("C0APPROVALS", "D0BOB", "D0DAVE",
                                                     "C0SECURITY")}
    for message in copies.values():
        assert "prod is down" in read(message) and "<!channel>" not in json.dumps(message)
        assert "prod-admins for 1h" in read(message)
    review_id = buttons(copies["D0BOB"])[ActionId.BREAK_GLASS_REVIEWED]["value"]

    # an approver marks it Reviewed, with a note
    assert sender.click("U0BOB", ActionId.BREAK_GLASS_REVIEWED, review_id,
                        channel="D0BOB").status == 200
    opened = slack.wait_for(lambda: [c for c in slack.calls("views.open") if c.args["view"]
                                     ["callback_id"] == ViewId.BREAK_GLASS_REVIEW_FORM])
    assert opened[-1].args["view"]["private_metadata"] == review_id
    note = {BlockId.BREAK_GLASS_NOTE: {ActionId.BREAK_GLASS_NOTE_INPUT: {
        "type": "plain_text_input", "value": "justified: INC-42, reverted"}}}
    done = sender.submit_view("U0BOB", ViewId.BREAK_GLASS_REVIEW_FORM, note,
                              private_metadata=review_id)
    assert done.status == 200 and done.body == ""

    slack.wait_for(lambda: all("Reviewed by @U0BOB" in read(m) for m in
                               (loud(c) for c in copies)))  # every copy, in place
    sessions = db(bot_env)
    with sessions() as session:
        review = session.get(BreakGlassReview, int(review_id))
        assert (review.reviewed_by, review.note) == ("U0BOB", "justified: INC-42, reverted")
        actions = [(e.actor, e.action) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.request_id == review.request_id)
            .order_by(AuditEvent.id))]
    assert ("U0ALICE", "break_glass_used") in actions
    assert ("U0ALICE", "approved") in actions
    assert ("U0BOB", "break_glass_reviewed") in actions

    # approval: none, on the same bot: granted at once, an informational copy
    reply = sender.command("U0ALICE", "sandbox 1h try the new image")
    assert reply.status == 200
    slack.wait_for(lambda: "alice" in members(aws, "sandbox"))
    posted = slack.wait_for(lambda: next((m for m in slack.messages("C0APPROVALS")
                                          if "sandbox" in read(m)), None))
    # nothing to decide; only Revoke, for the approvers and admins, while it is live
    assert set(buttons(posted)) == {"accessbot.revoke_grant"}
    assert "approval: none" in read(posted)
