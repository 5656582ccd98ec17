"""`accessbot audit`: every action as a sentence with names, and the trail's filters."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from accessbot.models import AccessRequest, AuditEvent, CredentialFinding, Grant
from accessbot.services import audit
from accessbot.services.audit import Action, Entry, TrailFilter
from tests import factories

AT = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
NAMES = {"U0ALICE": "Alice", "U0BOB": "Bob", "C0SECURITY": "#security"}
REQUEST = AccessRequest(id=7, requester_id="U0ALICE", resource="prod-admins",
                        duration=timedelta(hours=2), reason="deploy hotfix 123",
                        iam_user="alice")
EXTENSION = AccessRequest(id=8, requester_id="U0ALICE", resource="prod-admins",
                          duration=timedelta(minutes=30), reason="the migration runs long",
                          iam_user="alice", extends_grant_id=3)
GRANT = Grant(id=3, request_id=7, requester_id="U0ALICE", iam_user="alice",
              resource="prod-admins", kind="iam_group", target="prod-admins",
              expires_at=AT + timedelta(hours=2))
FINDING = CredentialFinding(id=5, iam_user="alice", kind="key_unused",
                            subject="key:1796206681", key_id="AKIAEXAMPLE00001WXYZ",
                            owner="U0ALICE")

# (action, actor, the rows it is about, detail) -> the line `accessbot audit` prints
REVIEWED = "IAM user carol: member, IAM group prod-admins"  # services/reviews.describe

SENTENCES = [
    (Action.REQUESTED, "U0ALICE", (REQUEST, None), None,
     "Alice asked for prod-admins for 2h (request #7): “deploy hotfix 123”"),
    (Action.REQUESTED, "U0ALICE", (EXTENSION, GRANT), "30m more on grant #3",
     "Alice asked for 30m more of prod-admins (request #8): “the migration runs long”"),
    (Action.ANNOUNCED, "accessbot", (REQUEST, None), None,
     "accessbot asked prod-admins's approvers to decide Alice's request #7"),
    (Action.REQUEST_FAILED, "accessbot", (REQUEST, None), "you have no IAM user",
     "Alice's request #7 for prod-admins failed: you have no IAM user"),
    (Action.APPROVED, "U0BOB", (REQUEST, GRANT), None,
     "Bob approved Alice's request #7: prod-admins for 2h"),
    (Action.APPROVAL_COUNTED, "U0BOB", (REQUEST, None), "approved (1 of 2)",
     "Bob approved Alice's request #7: prod-admins for 2h (1 of 2); more approvals needed"),
    (Action.APPROVED, "U0BOB", (REQUEST, GRANT), "approved (2 of 2) for 30m of the 2h asked",
     "Bob approved Alice's request #7: prod-admins for 30m of the 2h asked (2 of 2)"),
    (Action.DENIED, "U0BOB", (REQUEST, None), "not during the freeze",
     "Bob denied Alice's request #7 for prod-admins: “not during the freeze”"),
    (Action.REQUEST_EXPIRED, "accessbot", (REQUEST, None), None,
     "Alice's request #7 for prod-admins expired before anyone decided"),
    (Action.EXTENDED, "U0BOB", (EXTENSION, GRANT), "until 2026-11-28 11:30:00 UTC",
     "Bob gave Alice more time on prod-admins, until 2026-11-28 11:30:00 UTC"),
    (Action.GRANTED, "accessbot", (REQUEST, GRANT), "alice -> iam_group prod-admins",
     "accessbot granted Alice prod-admins as IAM user alice, until 2026-11-28 11:00:00 UTC"),
    (Action.GRANT_FAILED, "accessbot", (REQUEST, GRANT), "NoSuchEntity: no group",
     "accessbot could not grant Alice prod-admins: NoSuchEntity: no group"),
    (Action.GRANT_RETRY, "accessbot", (REQUEST, GRANT), "attempt 1: Throttling",
     "granting prod-admins for Alice failed and is retried (attempt 1: Throttling)"),
    (Action.REVOKE_RETRY, "accessbot", (REQUEST, GRANT), "attempt 2: Throttling",
     "revoking prod-admins for Alice failed and is retried (attempt 2: Throttling)"),
    (Action.WARNED, "accessbot", (REQUEST, GRANT), None,
     "accessbot told Alice that prod-admins ends at 2026-11-28 11:00:00 UTC"),
    (Action.ENDED_EARLY, "U0ALICE", (REQUEST, GRANT), None,
     "Alice ended their prod-admins access early"),
    (Action.REVOKED, "accessbot", (REQUEST, GRANT), "expired",
     "accessbot revoked Alice's prod-admins (expired)"),
    (Action.CANCELLED, "U0ALICE", (REQUEST, None), None,
     "Alice cancelled their request #7 for prod-admins"),
    (Action.REMINDED, "accessbot", (REQUEST, None), "reminder 2 of 3 to U0BOB",
     "accessbot reminded prod-admins's approvers of Alice's request #7 (reminder 2 of 3 to "
     "Bob)"),
    (Action.REVOKED_BY_OTHER, "U0BOB", (REQUEST, GRANT), "revoked by U0BOB: done here",
     "Alice's prod-admins was revoked by Bob: done here"),
    (Action.ADMINS_ALERTED, "accessbot", (REQUEST, GRANT), None,
     "accessbot alerted the admin channel: prod-admins for Alice keeps failing"),
    (Action.ACTIVITY_SUMMARISED, "accessbot", (REQUEST, GRANT),
     '{"user_name":"alice","events":12,"by_service":{"s3":12},"writes":3,"denied":1,'
     '"sign_ins":0,"source_ips":["203.0.113.9"],"truncated":false}',
     "accessbot looked up in CloudTrail what Alice did with prod-admins: 12 events, 3 changes, "
     "1 denied, 0 console sign-ins"),
    (Action.ACTIVITY_UNAVAILABLE, "accessbot", (REQUEST, GRANT),
     "gave up after 30 attempts: Rate exceeded",
     "accessbot could not look up what Alice did with prod-admins in CloudTrail: gave up "
     "after 30 attempts: Rate exceeded"),
    (Action.BREAK_GLASS_USED, "U0ALICE", (REQUEST, None),
     "prod-admins for 1h (asked for 2h, cut to break_glass_max_duration): prod is down",
     "Alice broke the glass (request #7): prod-admins for 1h (asked for 2h, cut to "
     "break_glass_max_duration): prod is down"),
    (Action.BREAK_GLASS_REMINDED, "accessbot", (REQUEST, GRANT), "U0BOB",
     "accessbot reminded Bob to review Alice's break-glass request #7"),
    (Action.BREAK_GLASS_ESCALATED, "accessbot", (REQUEST, GRANT), None,
     "accessbot told the admin channel: Alice's break-glass request #7 was not reviewed in "
     "time"),
    (Action.BREAK_GLASS_REVIEWED, "U0BOB", (REQUEST, GRANT), "checked the CloudTrail",
     "Bob reviewed Alice's break-glass request #7: “checked the CloudTrail”"),
    (Action.FINDING_OPENED, "accessbot", FINDING, "alice has an unused access key",
     "accessbot found that alice has an unused access key (...WXYZ)"),
    (Action.FINDING_TOLD, "accessbot", FINDING, "told U0ALICE",
     "accessbot told Alice that alice has an unused access key (...WXYZ)"),
    (Action.FINDING_TOLD, "accessbot", FINDING, "told C0SECURITY",
     "accessbot told #security that alice has an unused access key (...WXYZ)"),
    (Action.FINDING_FIXING, "U0ALICE", FINDING, None,
     "Alice said they will fix it: alice has an unused access key (...WXYZ)"),
    (Action.FINDING_SNOOZED, "U0ALICE", FINDING, "until 2026-12-05 09:00 UTC",
     "Alice snoozed “alice has an unused access key (...WXYZ)” until 2026-12-05 09:00 UTC"),
    (Action.FINDING_ESCALATED, "accessbot", FINDING, None,
     "accessbot told the admin channel, unresolved: alice has an unused access key (...WXYZ)"),
    (Action.FINDING_RESOLVED, "accessbot", FINDING, "no longer in the credential report",
     "resolved: alice has an unused access key (...WXYZ) (no longer in the credential "
     "report)"),
    (Action.FINDING_RESOLVED, "U0BOB", FINDING, "key deactivated by U0BOB",
     "resolved: alice has an unused access key (...WXYZ) (key deactivated by Bob)"),
    (Action.KEY_FINAL_WARNING, "accessbot", FINDING, None,
     "accessbot warned Alice that it will deactivate the key: alice has an unused access "
     "key (...WXYZ)"),
    (Action.KEY_DEACTIVATED, "U0BOB", FINDING, "alice's access key ...WXYZ",
     "Bob deactivated alice's access key ...WXYZ"),
    (Action.REVIEW_KEPT, "U0BOB", (None, None), REVIEWED,
     f"Bob kept, in the access review: {REVIEWED}"),
    (Action.REVIEW_REMOVED, "U0BOB", (None, None), REVIEWED,
     f"Bob removed, in the access review: {REVIEWED}"),
    (Action.REVIEW_GONE, "U0BOB", (None, None), REVIEWED,
     f"Bob chose Remove, but it was already gone (checked live): {REVIEWED}"),
    (Action.REVIEW_ESCALATED, "accessbot", (None, None), REVIEWED,
     f"accessbot told the admin channel, undecided in the access review: {REVIEWED}"),
    (Action.REVIEW_UNANSWERED, "accessbot", (None, None), REVIEWED,
     f"the access review closed with nobody deciding: {REVIEWED}"),
    (Action.ROLE_SESSION_CAPPED, "U0BOB", FINDING, "role ci's maximum session at 1h",
     "Bob capped role ci's maximum session at 1h"),
]


def entry(action: Action, actor: str, about, detail: str | None) -> Entry:
    event = AuditEvent(at=AT, actor=actor, action=action.value, detail=detail)
    if isinstance(about, CredentialFinding):
        return Entry(event, None, None, about)
    request, grant = about
    return Entry(event, request, grant, None)


def test_every_action_has_its_own_sentence():
    assert {case[0] for case in SENTENCES} == set(Action)


@pytest.mark.parametrize("action, actor, about, detail, expected", SENTENCES,
                         ids=[f"{c[0].value}-{i}" for i, c in enumerate(SENTENCES)])
def test_each_action_reads_as_a_sentence_with_names(action, actor, about, detail, expected):
    line = audit.sentence(entry(action, actor, about, detail), lambda i: NAMES.get(i, i))
    assert line == expected
    assert not re.search(r"\b[UC]0[A-Z]+\b|<[@#!]|\b\d{10}\b", line)  # no ids, markup, epochs


def test_the_trail_filters_by_time_user_resource_and_request(sessions, catalog, clock):
    first = factories.active_grant(sessions, catalog, clock())
    clock.advance(hours=3)
    second_request = factories.create_request(sessions, catalog, clock(), resource="prod-readonly",
                                              **factories.someone(1))

    def actions(**wanted) -> list[tuple[str, int | None]]:
        with sessions() as session:
            return [(e.event.action, e.event.request_id)
                    for e in audit.trail(session, TrailFilter(**wanted))]

    first_request = factories.load_grant(sessions, first).request_id
    everything = actions()
    assert everything[0] == ("requested", first_request) and everything[-1] == (
        "requested", second_request)
    assert actions(since=clock() - timedelta(hours=1)) == [("requested", second_request)]
    assert {r for _, r in actions(user="U0ALICE")} == {first_request}
    assert {r for _, r in actions(user="user1")} == {second_request}  # an IAM user name
    assert {r for _, r in actions(user="U0BOB")} == {first_request}   # who approved
    assert {r for _, r in actions(resource="prod-readonly")} == {second_request}
    assert actions(request_id=first_request) == [
        ("requested", first_request), ("approved", first_request), ("granted", first_request)]
    assert actions(limit=1) == [("requested", second_request)]
