"""Block Kit builders for credential hygiene, on model objects built in memory."""

import json
from datetime import UTC, datetime, timedelta

from accessbot.handlers.hygiene_blocks import (
    account_audit,
    findings_digest,
    findings_escalated,
    findings_resolved,
    findings_summary,
    findings_superseded,
    key_final_warning,
)
from accessbot.handlers.ids import ActionId
from accessbot.models import CredentialFinding, FindingStatus
from accessbot.services.account_audit import Deviation
from accessbot.services.findings import Summary

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
WEEK = timedelta(days=7)


def a_finding(**fields) -> CredentialFinding:
    base = {"id": 11, "account": "", "iam_user": "alice", "kind": "key_too_old",
            "subject": "key:1", "status": FindingStatus.OPEN,
            "since": NOW - timedelta(days=120), "last_used": NOW - timedelta(days=2),
            "last_used_where": "s3 in eu-west-1", "key_slot": 1,
            "key_created": NOW - timedelta(days=120), "key_id": KEY_ID,
            "first_seen_at": NOW - timedelta(days=1), "last_seen_at": NOW, "owner": "U0ALICE"}
    return CredentialFinding(**{**base, **fields})


def buttons(blocks: list[dict]) -> dict[str, list[str]]:
    """block_id -> the action ids of its buttons."""
    return {b["block_id"]: [e["action_id"] for e in b["elements"]]
            for b in blocks if b["type"] == "actions"}


def test_digest_names_the_key_by_its_last_four_and_says_what_to_do():
    text, blocks = findings_digest([a_finding()], NOW, WEEK)
    body = json.dumps(blocks)
    assert "1 stale credential finding(s)" in text
    assert "access key ...MPLE" in body and KEY_ID not in body
    assert "Access key not rotated" in body and "Rotate it" in body
    assert "created 120d ago" in body  # how old
    assert "s3 in eu-west-1" in body  # last used where
    assert buttons(blocks) == {"finding-11": [ActionId.FINDING_DEACTIVATE,
                                              ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE]}
    deactivate = next(b for b in blocks if b["type"] == "actions")["elements"][0]
    assert deactivate["value"] == "11" and "confirm" in deactivate


def test_digest_lists_every_finding_of_the_owner_in_one_message():
    rows = [a_finding(), a_finding(id=12, kind="no_mfa", subject="password", key_id=None,
                                   key_slot=None, last_used=None)]
    text, blocks = findings_digest(rows, NOW, WEEK)
    assert "2 stale credential finding(s)" in text
    assert set(buttons(blocks)) == {"finding-11", "finding-12"}
    # only keys can be deactivated from Slack
    assert buttons(blocks)["finding-12"] == [ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE]


def test_an_unmatched_key_has_no_deactivate_button_and_is_named_by_date():
    _, blocks = findings_digest([a_finding(key_id=None)], NOW, WEEK)
    assert ActionId.FINDING_DEACTIVATE not in buttons(blocks)["finding-11"]
    assert "access key 1 created 2026-07-31" in json.dumps(blocks)


def test_the_message_shows_who_snoozed_who_fixes_and_what_resolved():
    snoozed = a_finding(snoozed_by="U0ALICE", snoozed_until=NOW + timedelta(days=7))
    fixing = a_finding(id=12, fixing_by="U0ALICE", fixing_at=NOW)
    done = a_finding(id=13, status=FindingStatus.RESOLVED, resolved_at=NOW,
                     resolution="key deactivated by <@U0ALICE>")
    _, blocks = findings_digest([snoozed, fixing, done], NOW, WEEK)
    body = json.dumps(blocks)
    assert "Snoozed by <@U0ALICE>" in body
    assert "<@U0ALICE> will fix it" in body
    assert "key deactivated by <@U0ALICE>" in body
    # snoozed and resolved findings have no buttons; "I'll fix it" is not offered twice
    assert buttons(blocks) == {"finding-12": [ActionId.FINDING_DEACTIVATE,
                                              ActionId.FINDING_SNOOZE]}


def test_a_card_says_how_often_its_finding_was_snoozed():
    again = a_finding(snoozed_by="U0ALICE", snoozed_until=NOW + WEEK, snooze_count=3)
    awake = a_finding(id=12, snoozed_by="U0ALICE", snoozed_until=NOW - WEEK, snooze_count=1)
    never = a_finding(id=13)
    _, blocks = findings_digest([again, awake, never], NOW, WEEK)
    statuses = [b["elements"][0]["text"] for b in blocks if b["type"] == "context"]
    assert statuses[0].startswith(":zzz: Snoozed by <@U0ALICE> until ")
    assert statuses[0].endswith(" (snoozed 3 times)")
    assert statuses[1:] == [":zzz: Snoozed once, still open"]  # never snoozed: no status


def test_an_escalation_says_how_often_each_finding_was_snoozed():
    rows = [a_finding(snooze_count=3, first_seen_at=NOW - timedelta(days=16)),
            a_finding(id=12, first_seen_at=NOW - timedelta(days=15))]
    _, blocks = findings_escalated(rows, NOW)
    owners = [b["text"]["text"].rsplit("\n", 1)[1] for b in blocks[1:]]
    assert owners == ["Owner: <@U0ALICE> · snoozed 3 times, open 16d ago",
                      "Owner: <@U0ALICE> · open 15d ago"]


def test_all_resolved_reads_as_thanks():
    text, _ = findings_digest([a_finding(status=FindingStatus.RESOLVED, resolved_at=NOW,
                                         resolution="gone")], NOW, WEEK)
    assert "Thank you" in text


def test_never_used_key():
    _, blocks = findings_digest([a_finding(kind="key_unused", last_used=None,
                                           last_used_where=None)], NOW, WEEK)
    assert "never used" in json.dumps(blocks)


def test_resolved_escalated_and_final_warning_messages():
    text, _ = findings_resolved([a_finding()])
    assert "Thank you" in text and "...MPLE" in text and KEY_ID not in text

    text, blocks = findings_escalated([a_finding(), a_finding(id=12, owner="C0PLATFORM")],
                                      NOW)
    body = json.dumps(blocks)
    assert "2 stale credential finding(s) still open" in text
    assert "Owner: <@U0ALICE>" in body and "no owner" in body

    text, blocks = key_final_warning(a_finding(), NOW + timedelta(days=1), WEEK)
    assert "will *deactivate* access key ...MPLE" in text and "not be deleted" in text
    assert "finding-11" in buttons(blocks)


def test_summary_shows_counts_trend_and_oldest():
    summary = Summary(open_by_kind={"key_too_old": 3, "no_mfa": 1},
                      open_last_week_by_kind={"key_too_old": 5}, new=1, resolved=3,
                      oldest=a_finding(first_seen_at=NOW - timedelta(days=30)))
    text, blocks = findings_summary(summary, NOW)
    body = json.dumps(blocks, ensure_ascii=False)
    assert "4 open (-1 on last week)" in text
    assert "New: 1 \u00b7 resolved: 3" in body
    assert "Access key not rotated: 3 (last week 5)" in body
    assert "Console password without MFA: 1 (last week 0)" in body
    assert "`alice`, open 30d ago" in body


def test_account_audit_report():
    text, _ = account_audit([])
    assert "no deviations" in text
    text, blocks = account_audit([
        Deviation("password_policy", "minimum_length", "minimum password length: 8"),
        Deviation("unmanaged_member", "prod-admins", "mallory is in prod-admins")])
    body = json.dumps(blocks)
    assert "2 deviation(s)" in text
    assert "*Password policy*" in body and "*Group members without" in body
    assert "Administrators" not in body


def test_snooze_button_says_the_configured_length_and_channels_read_as_shared():
    _, blocks = findings_digest([a_finding()], NOW, timedelta(days=3), to_channel=True)
    body = json.dumps(blocks)
    assert "Snooze 3d" in body
    assert "this channel owns them" in body and "are yours" not in body


def test_resolved_findings_lose_their_advice():
    _, blocks = findings_digest([a_finding(status=FindingStatus.RESOLVED, resolved_at=NOW,
                                           resolution="gone")], NOW, WEEK)
    assert "Rotate it" not in json.dumps(blocks)


def test_a_superseded_message_has_no_buttons():
    text, blocks = findings_superseded()
    assert "newer reminder" in text and buttons(blocks) == {}


def test_text_from_aws_and_services_is_escaped_but_their_mentions_work():
    resolved = a_finding(status=FindingStatus.RESOLVED, resolved_at=NOW,
                         resolution="key deactivated by <@U0ALICE> <!channel>",
                         last_used_where="<https://evil.example|s3>")
    _text, blocks = findings_digest([resolved], NOW, WEEK)
    body = json.dumps(blocks)
    assert "<@U0ALICE>" in body and "&lt;!channel&gt;" in body
    assert "&lt;https://evil.example|s3&gt;" in body and "<https://" not in body


def test_an_owner_that_is_not_a_user_id_is_not_a_mention():
    _text, blocks = findings_escalated([a_finding(owner="ops@example.com> <!here")], NOW)
    body = json.dumps(blocks)
    assert "<!here>" not in body and "ops@example.com&gt; &lt;!here" in body


def test_a_long_audit_is_cut_to_a_sections_limit():
    deviations = [Deviation("unmanaged_member", "g", "<x> " + "y" * 200) for _ in range(40)]
    _text, blocks = account_audit(deviations)
    assert all(len(block["text"]["text"]) <= 3000 for block in blocks)
    assert "&lt;x&gt;" in json.dumps(blocks)


def test_a_key_both_unused_and_too_old_is_one_card_worse_reason_first():
    old = a_finding(id=11, kind="key_too_old")
    unused = a_finding(id=12, kind="key_unused", last_used=None)
    text, blocks = findings_digest([old, unused], NOW, WEEK)
    assert "1 stale credential finding(s)" in text
    assert buttons(blocks) == {"finding-12": [ActionId.FINDING_DEACTIVATE,
                                              ActionId.FINDING_FIX, ActionId.FINDING_SNOOZE]}
    card = next(b for b in blocks if b["type"] == "section" and "MPLE" in json.dumps(b))
    assert card["text"]["text"].startswith(
        "*Access key unused and access key not rotated*: access key ...MPLE of IAM user")
    # another key of the same user stays a card of its own
    other = a_finding(id=13, subject="key:2", key_id="AKIAOTHERKEY0000OTHR")
    assert set(buttons(findings_digest([old, unused, other], NOW, WEEK)[1])) == {
        "finding-12", "finding-13"}


def test_an_escalation_of_hundreds_is_one_message_within_slacks_limits():
    rows = [a_finding(id=100 + n) for n in range(300)]
    text, blocks = findings_escalated(rows, NOW)
    assert "300 stale credential finding(s) still open" in text
    assert len(blocks) == 1 + 45 + 1 <= 50
    assert blocks[-1]["elements"][0]["text"] == (
        "And 255 more: `accessbot audit --since 1d` names every one.")


def test_a_channels_list_is_a_summary_and_a_csv_a_spreadsheet_cannot_execute():
    from accessbot.handlers.hygiene_blocks import findings_list

    rows = [a_finding(id=1, iam_user="=HYPERLINK(\"http://evil\")"), a_finding(id=2),
            a_finding(id=3, kind="no_mfa", iam_user="svc")]
    comment, table = findings_list(rows, NOW)
    assert comment.startswith(":key: *3 stale credential findings for 3 IAM users*")
    assert "\n• Access key not rotated: 2\n• Console password without MFA: 1\n" in comment
    lines = table.splitlines()
    assert len(lines) == 4 and lines[1].startswith('own,"\'=HYPERLINK(')  # quoted, then inert


def test_a_finding_of_another_account_names_it_everywhere_it_is_shown():
    from accessbot.handlers.hygiene_blocks import findings_list

    row = a_finding(account="222222222222")
    text, blocks = findings_digest([row], NOW, WEEK)
    assert "IAM user `alice` in account 222222222222" in json.dumps(blocks)
    root = a_finding(account="222222222222", iam_user="<root_account>", kind="root_no_mfa")
    assert "the root account of account 222222222222" in json.dumps(findings_digest([root], NOW,
                                                                                    WEEK)[1])
    _, table = findings_list([row, a_finding(id=12)], NOW)
    assert [line.split(",")[:2] for line in table.splitlines()[1:]] == [
        ["own", "alice"], ["222222222222", "alice"]]  # the bot's own account first
