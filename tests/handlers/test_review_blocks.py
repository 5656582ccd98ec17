"""Block Kit builders of the access review, on model objects built in memory."""

import json
from datetime import UTC, datetime, timedelta

from accessbot.handlers.ids import ActionId
from accessbot.handlers.review_blocks import review_gone, review_message, review_outcome
from accessbot.models import ReviewItem, ReviewStatus

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def an_item(n: int = 1, **fields) -> ReviewItem:
    base = {"id": n, "run_id": 1, "account": "", "target_kind": "iam_group",
            "target": "prod-admins", "resource": "prod-admins", "principal_kind": "iam_user",
            "principal": f"user{n}", "how": "member", "via": "", "status": ReviewStatus.OPEN,
            "owner": "U0BOB,U0DAVE", "asked_at": NOW, "last_activity": NOW - timedelta(days=2),
            "target_note": "grants 14 services, used 2 in 90d: s3, logs"}
    return ReviewItem(**{**base, **fields})


def buttons(blocks: list[dict]) -> dict[str, list[str]]:
    return {b["block_id"]: [e["action_id"] for e in b["elements"]]
            for b in blocks if b["type"] == "actions"}


def test_open_rows_have_keep_and_remove_with_a_confirmation():
    text, blocks = review_message([an_item(1), an_item(2, last_activity=None,
                                                       unused="grants 3 services, used none "
                                                              "in 90d")])
    assert "Access review: IAM group prod-admins: keep or remove? 2 to decide" in text
    assert buttons(blocks) == {"review-1": [ActionId.REVIEW_KEEP, ActionId.REVIEW_REMOVE],
                               "review-2": [ActionId.REVIEW_KEEP, ActionId.REVIEW_REMOVE]}
    shown = json.dumps(blocks)
    assert "grants 14 services, used 2 in 90d: s3, logs" in shown  # the target's note
    assert "last active \\u2014" in shown and "used none in 90d" in shown
    remove = next(e for b in blocks if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == ActionId.REVIEW_REMOVE)
    assert remove["value"] == "1" and remove["confirm"]["confirm"]["text"] == "Remove"


def test_decided_rows_say_who_decided_and_lose_their_buttons():
    rows = [an_item(1, status=ReviewStatus.KEPT, decided_by="U0BOB", decided_at=NOW),
            an_item(2, status=ReviewStatus.REMOVED, decided_by="U0DAVE", decided_at=NOW,
                    detail="removed"),
            an_item(3, status=ReviewStatus.GONE, decided_by="U0DAVE", decided_at=NOW,
                    detail="already removed, checked live"),
            an_item(4, status=ReviewStatus.UNANSWERED, decided_by="accessbot", decided_at=NOW)]
    text, blocks = review_message(rows)
    assert buttons(blocks) == {} and "everything here is decided" in text
    shown = json.dumps(blocks)
    for said in ("Kept by <@U0BOB>", "Removed by <@U0DAVE>",
                 "Gone: already removed, checked live", "Nobody decided"):
        assert said in shown


def test_a_trust_policy_principal_is_keep_only_and_says_why():
    trusted = an_item(1, target_kind="iam_role", target="Deploy",
                      principal_kind="role_principal", principal="arn:aws:iam::1:root",
                      how="trusted by the role", last_activity=None)
    _, blocks = review_message([trusted])
    assert buttons(blocks) == {"review-1": [ActionId.REVIEW_KEEP]}
    assert "take it out of the role's trust policy yourself" in json.dumps(blocks)


def test_text_from_aws_is_escaped_and_twenty_rows_fit_in_one_message():
    rows = [an_item(n, principal=f"<!channel>{n}") for n in range(1, 21)]
    text, blocks = review_message(rows, reminder=True)
    assert text.startswith(":mag: Reminder:")
    assert len(blocks) <= 50 and "<!channel>" not in json.dumps(blocks)


def test_the_escalation_invites_the_channel_and_the_outcome_counts():
    text, _ = review_message([an_item(1, escalated_at=NOW)], escalated=True)
    assert "still open" in text
    rows = [an_item(1, status=ReviewStatus.KEPT), an_item(2, status=ReviewStatus.UNANSWERED)]
    text, blocks = review_outcome({"kept": 1, "removed": 0, "gone": 0, "unanswered": 1},
                                  rows, "222222222222")
    assert text == (":clipboard: Access review of account 222222222222 closed: 1 kept, "
                    "0 removed, 0 gone, 1 unanswered")
    assert "user2" in json.dumps(blocks) and "user1" not in json.dumps(blocks)
    assert "nothing" in review_gone()[0]
