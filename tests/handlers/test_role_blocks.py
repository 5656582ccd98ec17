"""Block Kit for role findings: the card says "role X", what is wrong and what to do, and a
long session's card has the Cap button."""

import json
from datetime import timedelta

from accessbot.handlers.hygiene_blocks import (
    findings_digest,
    findings_escalated,
    findings_list,
    findings_resolved,
)
from accessbot.handlers.ids import ActionId
from accessbot.models import FindingStatus
from tests.handlers.test_hygiene_blocks import NOW, WEEK, a_finding, buttons


def a_role_finding(kind="role_long_session", **fields):
    base = {"id": 21, "iam_user": "ci-deploy", "kind": kind, "subject": "session",
            "key_slot": None, "key_created": None, "key_id": None,
            "since": NOW - timedelta(days=300), "last_used": NOW - timedelta(days=1),
            "last_used_where": "eu-west-1", "detail": "sessions of up to 12h"}
    return a_finding(**{**base, **fields})


def test_a_long_session_card_has_the_cap_button_with_the_configured_cap():
    text, blocks = findings_digest([a_role_finding()], NOW, WEEK, cap=timedelta(hours=2))
    body = json.dumps(blocks, ensure_ascii=False)
    assert "1 stale credential finding(s)" in text
    assert "*Role sessions too long*: role `ci-deploy`" in body
    assert "sessions of up to 12h" in body and "eu-west-1" in body
    assert "IAM user" not in body and "access key" not in body
    assert "the IAM credential report and the IAM roles" in body
    assert "These credentials and roles are yours" in body
    assert buttons(blocks) == {"finding-21": [ActionId.FINDING_CAP_SESSION,
                                              ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE]}
    cap = next(b for b in blocks if b["type"] == "actions")["elements"][0]
    assert cap["text"]["text"] == "Cap at 2h" and cap["value"] == "21"
    assert "last at most 2h" in json.dumps(cap["confirm"])


def test_unused_and_open_trust_cards_have_no_cap_button():
    rows = [a_role_finding("role_unused", id=22, subject="role", last_used=None,
                           last_used_where=None, detail=None),
            a_role_finding("role_open_trust", id=23, subject="trust",
                           detail="trusts account 999988887777, anyone")]
    _, blocks = findings_digest(rows, NOW, WEEK)
    body = json.dumps(blocks, ensure_ascii=False)
    assert "*Role unused*: role `ci-deploy`" in body
    assert "created 300d ago · never used" in body
    assert "*Role trust policy too open*" in body and "trusts account 999988887777" in body
    assert "sts:ExternalId" in body  # what to do
    assert buttons(blocks) == {"finding-22": [ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE],
                               "finding-23": [ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE]}


def test_a_role_in_another_account_and_text_from_aws_is_escaped():
    _, blocks = findings_digest([a_role_finding(account="222222222222",
                                                detail="trusts <!channel>")], NOW, WEEK)
    body = json.dumps(blocks, ensure_ascii=False)
    assert "role `ci-deploy` in account 222222222222" in body
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body


def test_a_capped_card_says_who_capped_it_without_buttons():
    capped = a_role_finding(status=FindingStatus.RESOLVED, resolved_at=NOW,
                            resolution="session capped at 1h by <@U0ALICE>")
    text, blocks = findings_digest([capped], NOW, WEEK)
    assert "Everything in this message is resolved" in text
    assert "session capped at 1h by <@U0ALICE>" in json.dumps(blocks, ensure_ascii=False)
    assert buttons(blocks) == {}


def test_a_channel_owning_untagged_roles_is_told_so():
    _, blocks = findings_digest([a_role_finding()], NOW, WEEK, to_channel=True)
    assert "untagged roles" in json.dumps(blocks, ensure_ascii=False)


def test_thanks_escalation_and_the_list_name_the_role():
    row = a_role_finding()
    assert "Role sessions too long: role `ci-deploy`" in findings_resolved([row])[0]
    assert "role `ci-deploy`" in json.dumps(findings_escalated([row], NOW)[1])
    comment, table = findings_list([row], NOW)
    assert "Role sessions too long" in comment and "ci-deploy" in table
