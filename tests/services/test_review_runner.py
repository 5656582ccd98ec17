"""The access review with fakes of the account, Identity Center, the owners and Slack, on
SQLite and Postgres: targets, standing members, the rows asked about, Keep, Remove with its
live re-check, reminders, escalation and the outcome."""

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from accessbot.models import AuditEvent, ReviewCopy, ReviewItem, ReviewRun, ReviewStatus
from accessbot.services import reviews
from accessbot.services.errors import Conflict, NotAuthorized
from accessbot.services.outbox import Kind
from accessbot.services.ports import DirectAdmin, HeldRole, ProviderError, ServiceUse
from accessbot.services.review_runner import INTERRUPTED_AFTER, ReviewRunner, ReviewSide
from tests.factories import active_grant, make_catalog
from tests.fakes.hygiene import FakeAccount, FakeOwners, row
from tests.fakes.outbox import Mailroom
from tests.fakes.review import (
    FakeIdentityCenter,
    FakeLastAccessed,
    FakeStanding,
    group_arn,
    user_arn,
)

ADMINS = "C0SECURITY"
TRUSTED = "arn:aws:iam::111122223333:root"
SSO_ACCOUNT = "222222222222"
ROLE_ARN = "arn:aws:iam::123456789012:role/ProdReadOnly"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"


def _catalog(**review):
    return make_catalog(
        {"sso-admin": {"kind": "sso_permission_set", "permission_set": "AdminPS",
                       "account": SSO_ACCOUNT, "approvers": ["U0BOB"]}},
        review={"groups": ["break-glass"], **review})


def use(namespace: str, days_ago: int | None, now: datetime) -> ServiceUse:
    return ServiceUse(namespace, namespace.upper(),
                      None if days_ago is None else now - timedelta(days=days_ago))


@pytest.fixture
def standing(clock):
    return FakeStanding(
        groups={"prod-admins": {"carol", "erin"}, "break-glass": {"frank"}},
        roles={"ProdReadOnly": HeldRole(ROLE_ARN, (TRUSTED,), clock() - timedelta(days=3))},
        admins=[DirectAdmin("ops", user_arn("ops"), ADMIN_POLICY,
                            "AdministratorAccess attached directly")])


@pytest.fixture
def credentials(clock):
    now = clock()
    return FakeAccount(rows=[row("carol", now - timedelta(days=400),
                                 password=True, password_last_used=now - timedelta(days=2))])


@pytest.fixture
def owners():
    # erin is Dave's own IAM user: Dave approves prod-admins, but not his own membership
    return FakeOwners(tags={"erin": {"slack-user-id": "U0DAVE"},
                            "carol": {"email": "carol@example.com"}},
                      emails={"carol@example.com": "U0CAROL"})


@pytest.fixture
def identity_center():
    return FakeIdentityCenter(assignments={("AdminPS", SSO_ACCOUNT): {"sso-gina"}},
                              names={"sso-gina": "gina"})


@pytest.fixture
def last_accessed(clock):
    now = clock()
    return FakeLastAccessed(
        uses={group_arn("prod-admins"): [use("s3", 3, now), use("logs", 10, now),
                                         use("ec2", None, now), use("iam", 200, now)],
              user_arn("ops"): [use("s3", 1, now), use("kms", None, now)]},
        failing={ROLE_ARN})


@pytest.fixture
def make_runner(sessions, standing, credentials, owners, identity_center, last_accessed, clock):
    def make(catalog=None, last_accessed=last_accessed) -> ReviewRunner:
        return ReviewRunner(sessions, catalog or _catalog(),
                            {"": ReviewSide(standing, credentials, owners, last_accessed)},
                            identity_center=identity_center, clock=clock)
    return make


@pytest.fixture
def runner(make_runner):
    return make_runner()


@pytest.fixture
def mail(sessions, clock):
    return Mailroom(sessions, _catalog(), clock)


def items(sessions) -> dict[tuple[str, str], ReviewItem]:
    """(target, principal) -> its latest item."""
    with sessions() as session:
        return {(r.target, r.principal): r
                for r in session.scalars(select(ReviewItem).order_by(ReviewItem.id))}


def decide(runner, sessions, how: str, item_id: int, user: str, channel: str | None = None):
    if how == "keep":
        with runner.transaction() as session:
            return runner.keep_in(session, item_id, user, channel)
    return runner.remove(item_id, user, channel)


def test_targets_and_standing_members_minus_live_grants(runner, sessions, clock, standing):
    # alice's membership is a live grant: not standing access
    standing.groups["prod-admins"].add("alice")
    active_grant(sessions, _catalog(), clock())
    result = runner.review()
    found = items(sessions)
    assert set(found) == {
        ("prod-admins", "carol"), ("prod-admins", "erin"), ("break-glass", "frank"),
        ("ProdReadOnly", TRUSTED), ("administrator policies on users", "ops"),
        ("AdminPS", "sso-gina")}
    assert result["items"] == 6 and result["new"] == 6
    carol, erin = found["prod-admins", "carol"], found["prod-admins", "erin"]
    assert carol.owner == "U0BOB,U0DAVE" and carol.how == "member"
    assert carol.last_activity == clock() - timedelta(days=2)  # the credential report
    assert erin.last_activity is None and erin.principal_slack == "U0DAVE"
    assert carol.principal_slack == "U0CAROL"  # by the email tag
    # the group's unused services in the target's note; the role's data failed: omitted
    assert carol.target_note == "grants 4 services, used 2 in 90d: s3, logs"
    role = found["ProdReadOnly", TRUSTED]
    assert role.owner == "U0BOB" and role.principal_kind == "role_principal"
    assert role.target_note == f"role last used {clock() - timedelta(days=3):%Y-%m-%d}"
    # no approvers and no owner tag: the admin channel decides
    assert found["break-glass", "frank"].owner == ADMINS
    ops = found["administrator policies on users", "ops"]
    assert (ops.owner, ops.via, ops.unused) == (ADMINS, ADMIN_POLICY,
                                                "grants 2 services, used 1 in 90d: s3")
    gina = found["AdminPS", "sso-gina"]
    assert (gina.principal_label, gina.via, gina.owner) == ("gina", SSO_ACCOUNT, "U0BOB")


def test_each_decider_gets_one_message_per_target_and_copies_are_recorded(runner, mail,
                                                                          sessions):
    runner.review()
    asks = mail.owed(Kind.REVIEW_ASK)
    by_destination: dict[str, list[list[int]]] = {}
    for ask in asks:
        by_destination.setdefault(ask["destination"], []).append(ask["item_ids"])
    found = items(sessions)
    group_ids = sorted([found["prod-admins", "carol"].id, found["prod-admins", "erin"].id])
    # every approver gets a copy of prod-admins' rows; Bob also approves the role and PS
    assert [sorted(ids) for ids in by_destination["U0DAVE"]] == [group_ids]
    assert len(by_destination["U0BOB"]) == 3
    assert len(by_destination[ADMINS]) == 2  # break-glass, direct administrators
    assert all(not ask["reminder"] for ask in asks)
    mail.deliver()
    posted = mail.client.posted("U0DAVE")
    assert len(posted) == 1 and "keep or remove?" in posted[0]["text"]
    with sessions() as session:  # where Slack put Dave's copy, for its updates
        copies = session.execute(select(ReviewCopy.channel, ReviewItem.principal).join(
            ReviewItem, ReviewItem.id == ReviewCopy.item_id)
            .where(ReviewCopy.channel == "D0DAVE")).all()
    assert sorted(principal for _, principal in copies) == ["carol", "erin"]


def test_a_new_review_refreshes_open_items_instead_of_asking_twice(runner, mail, sessions,
                                                                   standing, clock):
    runner.review()
    mail.deliver()
    first = items(sessions)
    asks = len(mail.owed(Kind.REVIEW_ASK))
    clock.advance(hours=1)
    standing.groups["prod-admins"].discard("erin")  # gone meanwhile
    result = runner.review()
    again = items(sessions)
    assert result["new"] == 0 and result["gone"] == 1
    assert again["prod-admins", "carol"].id == first["prod-admins", "carol"].id
    assert again["prod-admins", "carol"].status is ReviewStatus.OPEN
    assert again["prod-admins", "erin"].status is ReviewStatus.GONE
    assert len(mail.owed(Kind.REVIEW_ASK)) == asks  # told within reminder_interval: not again
    # carol stays in the run that asked first; the second found nothing new and closed
    # without a word (the first run's outcome will count carol)
    assert again["prod-admins", "carol"].run_id == first["prod-admins", "carol"].run_id
    with sessions() as session:
        runs = session.scalars(select(ReviewRun).order_by(ReviewRun.id)).all()
    assert runs[0].closed_at is None
    assert runs[1].closed_at is not None and runs[1].outcome_posted_at is None
    assert mail.owed(Kind.REVIEW_OUTCOME) == []


def test_keep_is_recorded_and_every_copy_updates(runner, mail, sessions):
    runner.review()
    mail.deliver()
    carol = items(sessions)["prod-admins", "carol"]
    decide(runner, sessions, "keep", carol.id, "U0BOB")
    kept = items(sessions)["prod-admins", "carol"]
    assert (kept.status, kept.decided_by) == (ReviewStatus.KEPT, "U0BOB")
    updates = mail.owed(Kind.REVIEW_UPDATE)
    assert {u["channel"] for u in updates} == {"D0BOB", "D0DAVE"}
    mail.deliver()
    assert len(mail.client.updated()) == 2
    with sessions() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "review_kept" in actions
    # the other approver, a moment later: told who decided, nothing changes
    with pytest.raises(Conflict, match="Already decided by <@U0BOB>: kept"):
        decide(runner, sessions, "keep", carol.id, "U0DAVE")


@pytest.mark.parametrize("user, channel", [("U0EVE", None), ("U0EVE", "C0RANDOM"),
                                           ("U0DAVE", None)])
def test_not_a_decider_or_the_principal_is_refused(runner, sessions, user, channel):
    runner.review()
    erin = items(sessions)["prod-admins", "erin"]  # Dave's own IAM user
    with pytest.raises(NotAuthorized):
        decide(runner, sessions, "keep", erin.id, user, channel)
    assert items(sessions)["prod-admins", "erin"].status is ReviewStatus.OPEN


def test_a_channel_decides_from_that_channel(runner, sessions):
    runner.review()
    frank = items(sessions)["break-glass", "frank"]
    with pytest.raises(NotAuthorized):
        decide(runner, sessions, "keep", frank.id, "U0EVE", "C0ELSEWHERE")
    decide(runner, sessions, "keep", frank.id, "U0EVE", ADMINS)
    assert items(sessions)["break-glass", "frank"].status is ReviewStatus.KEPT


def test_remove_rechecks_live_then_removes(runner, mail, sessions, standing):
    runner.review()
    mail.deliver()
    found = items(sessions)
    said = decide(runner, sessions, "remove", found["prod-admins", "carol"].id, "U0BOB")
    assert said.startswith("Removed: IAM user carol")
    assert standing.calls == [("remove_member", "prod-admins", "carol")]
    carol = items(sessions)["prod-admins", "carol"]
    assert (carol.status, carol.decided_by, carol.detail) == (ReviewStatus.REMOVED, "U0BOB",
                                                              "removed")
    assert {u["channel"] for u in mail.owed(Kind.REVIEW_UPDATE)} == {"D0BOB", "D0DAVE"}
    # a directly attached AdministratorAccess: detached
    said = decide(runner, sessions, "remove", found["administrator policies on users", "ops"].id,
                  "U0EVE", ADMINS)
    assert ("detach_admin", "ops", ADMIN_POLICY) in standing.calls and standing.admins == []


def test_remove_of_access_already_gone_is_gone_not_removed(runner, sessions, standing):
    runner.review()
    erin = items(sessions)["prod-admins", "erin"]
    standing.groups["prod-admins"].discard("erin")  # someone took erin out meanwhile
    said = decide(runner, sessions, "remove", erin.id, "U0BOB")
    assert "already gone (checked live)" in said
    assert standing.calls == []
    erin = items(sessions)["prod-admins", "erin"]
    assert (erin.status, erin.detail) == (ReviewStatus.GONE, "already removed, checked live")


def test_a_failed_removal_leaves_the_item_open(runner, sessions, standing):
    runner.review()
    carol = items(sessions)["prod-admins", "carol"]
    standing.refuse = True
    with pytest.raises(ProviderError):
        decide(runner, sessions, "remove", carol.id, "U0BOB")
    assert items(sessions)["prod-admins", "carol"].status is ReviewStatus.OPEN


def test_a_removal_cut_off_by_a_crash_is_carried_out_by_the_follow_up(runner, sessions,
                                                                      standing, clock):
    runner.review()
    carol = items(sessions)["prod-admins", "carol"]
    with runner.transaction() as session:  # decided and committed; the worker died here
        reviews.claim_removal(session, carol.id, "U0BOB", None, ADMINS, clock())
    assert runner.follow_up()["finished"] == 0  # not yet: it may still be under way
    assert standing.calls == []
    clock.advance(seconds=INTERRUPTED_AFTER.total_seconds())
    assert runner.follow_up()["finished"] == 1
    assert standing.calls == [("remove_member", "prod-admins", "carol")]
    carol = items(sessions)["prod-admins", "carol"]
    assert (carol.status, carol.decided_by, carol.detail) == (ReviewStatus.REMOVED, "U0BOB",
                                                              "removed")
    assert runner.follow_up()["finished"] == 0  # recorded: never twice


def test_identity_center_assignment_is_removed(runner, sessions, identity_center):
    runner.review()
    gina = items(sessions)["AdminPS", "sso-gina"]
    decide(runner, sessions, "remove", gina.id, "U0BOB")
    assert identity_center.calls == [("remove_assignment", "AdminPS", SSO_ACCOUNT, "sso-gina")]
    assert items(sessions)["AdminPS", "sso-gina"].status is ReviewStatus.REMOVED


def test_trust_policy_principals_are_keep_only(runner, sessions):
    runner.review()
    trusted = items(sessions)["ProdReadOnly", TRUSTED]
    with pytest.raises(Conflict, match="trust policy yourself"):
        decide(runner, sessions, "remove", trusted.id, "U0BOB")
    decide(runner, sessions, "keep", trusted.id, "U0BOB")


def test_two_deciders_racing_make_one_decision(runner, sessions, standing):
    runner.review()
    carol = items(sessions)["prod-admins", "carol"].id
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def click(user: str, how: str) -> None:
        barrier.wait()
        try:
            results[user] = decide(runner, sessions, how, carol, user)
        except Conflict as exc:
            results[user] = exc

    threads = [threading.Thread(target=click, args=("U0BOB", "keep")),
               threading.Thread(target=click, args=("U0DAVE", "remove"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conflicts = [r for r in results.values() if isinstance(r, Conflict)]
    assert len(conflicts) == 1 and "Already decided by" in str(conflicts[0])
    final = items(sessions)["prod-admins", "carol"]
    assert final.status in (ReviewStatus.KEPT, ReviewStatus.REMOVED)
    assert (standing.calls != []) == (final.status is ReviewStatus.REMOVED)


def test_unanswered_rows_are_reminded_escalated_once_then_closed_with_the_outcome(
        runner, mail, sessions, clock):
    runner.review()
    mail.deliver()
    found = items(sessions)
    decide(runner, sessions, "keep", found["prod-admins", "carol"].id, "U0BOB")
    asks = len(mail.owed(Kind.REVIEW_ASK))

    clock.advance(hours=1)  # nothing due yet
    assert runner.follow_up() == {"account": "own", "messages": 0, "escalated": 0,
                                  "closed": 0, "finished": 0}

    clock.advance(days=3)  # hygiene.reminder_interval: the open rows again, as reminders
    assert runner.follow_up()["messages"] == 6
    reminders = mail.owed(Kind.REVIEW_ASK)[asks:]
    assert all(r["reminder"] for r in reminders)
    # prod-admins: only erin is open, but the reminder lists the target's open rows
    assert sorted(r["item_ids"] for r in reminders if r["destination"] == "U0DAVE") == [
        [found["prod-admins", "erin"].id]]

    clock.advance(days=11)  # hygiene.escalate_after (14 days): the admins, once
    result = runner.follow_up()
    assert result["escalated"] == 5 and result["closed"] == 0
    escalated = mail.owed(Kind.REVIEW_ESCALATED)
    assert len(escalated) == 5  # one message per target
    assert runner.follow_up()["escalated"] == 0
    # once escalated, the admin channel may decide any row
    decide(runner, sessions, "keep", found["prod-admins", "erin"].id, "U0EVE", ADMINS)

    clock.advance(days=14)  # twice escalate_after: the review closes
    assert runner.follow_up()["closed"] == 1
    after = items(sessions)
    assert after["ProdReadOnly", TRUSTED].status is ReviewStatus.UNANSWERED
    [outcome] = mail.owed(Kind.REVIEW_OUTCOME)
    mail.deliver()
    [posted] = [p for p in mail.client.posted(ADMINS) if "closed" in p["text"]]
    assert "2 kept, 0 removed, 0 gone, 4 unanswered" in posted["text"]
    with sessions() as session:
        run = session.get(ReviewRun, outcome["run_id"])
        assert run.closed_at == run.outcome_posted_at == clock()

    # the next review asks again about what was unanswered
    # (and, as every review, about what was kept last time: a recertification)
    assert runner.review()["new"] == 6
    with sessions() as session:
        reopened = session.scalars(select(ReviewItem.principal).where(
            ReviewItem.status == ReviewStatus.OPEN)).all()
    assert sorted(reopened) == sorted(["carol", "erin", "frank", TRUSTED, "ops", "sso-gina"])


def test_a_review_with_everything_decided_closes_at_the_next_check(runner, mail, sessions,
                                                                  standing, identity_center):
    standing.groups = {"prod-admins": {"carol"}}
    standing.roles, standing.admins = {}, []
    identity_center.assignments = {}
    runner.review()
    carol = items(sessions)["prod-admins", "carol"]
    decide(runner, sessions, "keep", carol.id, "U0DAVE")
    assert runner.follow_up()["closed"] == 1
    mail.deliver()
    [posted] = [p for p in mail.client.posted(ADMINS) if "closed" in p["text"]]
    assert "1 kept, 0 removed, 0 gone, 0 unanswered" in posted["text"]


def test_without_last_accessed_data_nothing_is_said_about_unused_services(make_runner,
                                                                           sessions):
    make_runner(last_accessed=None).review()
    assert all(r.unused is None for r in items(sessions).values())
    assert items(sessions)["prod-admins", "carol"].target_note is None


def test_a_review_that_finds_nothing_says_so_once(runner, mail, sessions, standing,
                                                  identity_center):
    standing.groups, standing.roles, standing.admins = {}, {}, []
    identity_center.assignments = {}
    assert runner.review()["closed"] == 0  # closed as it started
    [outcome] = mail.owed(Kind.REVIEW_OUTCOME)
    mail.deliver()
    [posted] = [p for p in mail.client.posted(ADMINS) if "closed" in p["text"]]
    assert "0 kept" in posted["text"] and "No standing access" in str(posted["blocks"])


def test_a_catalog_without_admin_channel_skips_the_administrators(make_runner, sessions):
    make_runner(make_catalog(admin_channel=None)).review()
    assert not any(r.target_kind == "administrators" for r in items(sessions).values())

