"""Role findings through HygieneRunner, with fakes of the account, its roles, the owners and
Slack, on SQLite and Postgres."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.models import AuditEvent, CredentialFinding, FindingStatus
from accessbot.services import findings
from accessbot.services.catalog import parse_catalog
from accessbot.services.errors import Conflict, NotAuthorized
from accessbot.services.hygiene import REPORT_KINDS, ROLE_KINDS, Finding, FindingKind
from accessbot.services.hygiene_runner import AccountSide, HygieneRunner
from tests.conftest import CATALOG
from tests.fakes.hygiene import FakeAccount, FakeOwners, HygieneMail, key_slot, row
from tests.fakes.roles import FakeRoles, role
from tests.services.test_hygiene_runner import Delivering

ADMINS = "C0SECURITY"
OTHER = "999988887777"
PROD = "222222222222"
K = FindingKind


def _catalog(**hygiene):
    return parse_catalog({**CATALOG, "hygiene": hygiene})


@pytest.fixture
def account(clock):
    now = clock().replace(microsecond=0)
    old = now - timedelta(days=100)
    account = FakeAccount(rows=[row("alice", old, keys=(key_slot(1, old, now),))])
    account.add_key("alice", "AKIAALICEOLDKEY1", old)
    return account


@pytest.fixture
def roles(clock):
    now = clock().replace(microsecond=0)
    return FakeRoles([
        # alice's role: sessions of 12h
        role("ci", now - timedelta(days=5), used=now, session=43200,
             tags={"slack-user-id": "U0ALICE"}),
        # carol's (by email), never used in 200 days
        role("reports", now - timedelta(days=200), tags={"email": "carol@example.com"}),
        # nobody's: trusts another account without an external id
        role("partner", now - timedelta(days=5), used=now, principal={"AWS": OTHER}),
        # a platform team's, fine
        role("app", now - timedelta(days=5), used=now, tags={"owner": "C0PLATFORM"}),
        # AWS's own: never unused or long
        role("AWSServiceRoleForECS", now - timedelta(days=900), session=43200,
             path="/aws-service-role/ecs.amazonaws.com/"),
    ])


@pytest.fixture
def owners():
    return FakeOwners(tags={"alice": {"slack-user-id": "U0ALICE"},
                            # an IAM user with the name of a role: its own tags
                            "reports": {"slack-user-id": "U0DAVE"}},
                      emails={"carol@example.com": "U0CAROL"})


@pytest.fixture
def notifier(sessions, clock):
    return HygieneMail(sessions, _catalog(), clock)


@pytest.fixture
def make_runner(sessions, account, roles, owners, notifier, clock):
    def make(**hygiene) -> HygieneRunner:
        return Delivering(HygieneRunner(sessions, _catalog(**hygiene), account, owners,
                                        clock=clock, owner="test-worker", roles=roles),
                          notifier)
    return make


@pytest.fixture
def runner(make_runner):
    return make_runner()


def load(sessions) -> dict[tuple[str, str], CredentialFinding]:
    with sessions() as session:
        return {(r.iam_user, r.kind): r for r in session.scalars(select(CredentialFinding))}


def test_role_findings_go_to_each_roles_owner_with_the_users_findings(runner, sessions,
                                                                      notifier):
    result = runner.stale_credentials()

    assert result["roles"] == 5 and result["role_findings"] == 3
    found = load(sessions)
    assert set(found) == {("alice", K.KEY_TOO_OLD), ("ci", K.ROLE_LONG_SESSION),
                          ("reports", K.ROLE_UNUSED), ("partner", K.ROLE_OPEN_TRUST)}
    assert found[("ci", K.ROLE_LONG_SESSION)].detail == "sessions of up to 12h"
    assert found[("partner", K.ROLE_OPEN_TRUST)].detail == f"trusts account {OTHER}"
    digests = {s.to: s for s in notifier.of("digest")}
    # the role's tags, not the IAM user "reports"' (U0DAVE); untagged: the admin channel
    assert set(digests) == {"U0ALICE", "U0CAROL", ADMINS}
    # alice hears of her key and her role in one message
    assert sorted(digests["U0ALICE"].ids) == sorted(
        [found[("alice", K.KEY_TOO_OLD)].id, found[("ci", K.ROLE_LONG_SESSION)].id])
    assert digests[ADMINS].ids == [found[("partner", K.ROLE_OPEN_TRUST)].id]
    assert found[("reports", K.ROLE_UNUSED)].owner == "U0CAROL"


def test_a_fixed_role_is_resolved_and_its_owner_thanked(runner, roles, sessions, notifier,
                                                        clock):
    runner.stale_credentials()
    roles.set("partner", trust_policy={"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": OTHER}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "shared"}}}]})
    roles.remove("reports")  # deleted

    clock.advance(days=1)
    result = runner.stale_credentials()

    assert result["resolved"] == 2
    found = load(sessions)
    for name, kind in (("partner", K.ROLE_OPEN_TRUST), ("reports", K.ROLE_UNUSED)):
        assert found[(name, kind)].status is FindingStatus.RESOLVED
        assert found[(name, kind)].resolution == findings.ROLE_GONE
    assert {s.to for s in notifier.of("resolved")} == {ADMINS, "U0CAROL"}
    assert found[("ci", K.ROLE_LONG_SESSION)].status is FindingStatus.OPEN


def test_roles_iam_would_not_show_leave_role_findings_open_and_untold(runner, roles, sessions,
                                                                       notifier, clock):
    runner.stale_credentials()
    told = {(r.iam_user, r.kind): r.last_told_at for r in load(sessions).values()}
    roles.refuse = True

    clock.advance(days=4)  # past the reminder interval
    result = runner.stale_credentials()

    assert result["roles"] == "not read" and result["resolved"] == 0
    after = load(sessions)
    assert all(r.status is FindingStatus.OPEN for r in after.values())
    # the key's owner is reminded; a role's owner is not guessed without its tags
    assert after[("alice", K.KEY_TOO_OLD)].last_told_at > told[("alice", K.KEY_TOO_OLD)]
    assert after[("ci", K.ROLE_LONG_SESSION)].last_told_at == told[("ci", K.ROLE_LONG_SESSION)]
    assert after[("partner", K.ROLE_OPEN_TRUST)].last_told_at == told[
        ("partner", K.ROLE_OPEN_TRUST)]


def test_the_credential_report_and_the_roles_never_resolve_each_others_findings(sessions,
                                                                              clock):
    now = clock()
    key = Finding("alice", K.KEY_UNUSED, "key:1", now)
    session_finding = Finding("ci", K.ROLE_LONG_SESSION, "session", now, detail="12h")
    with sessions.begin() as session:
        findings.sync(session, [key], now)
        findings.sync(session, [session_finding], now, kinds=ROLE_KINDS)
    with sessions.begin() as session:
        assert findings.sync(session, [], now).resolved[0].iam_user == "alice"
    with sessions.begin() as session:
        assert findings.sync(session, [], now).resolved == []
        assert findings.sync(session, [], now, kinds=ROLE_KINDS).resolved[0].iam_user == "ci"
    with pytest.raises(ValueError), sessions.begin() as session:
        findings.sync(session, [key], now, kinds=ROLE_KINDS)
    assert REPORT_KINDS.isdisjoint(ROLE_KINDS)


def test_excluded_roles_are_left_alone(make_runner, roles, sessions):
    roles.set("partner", tags={"accessbot-ignore": "true"})
    runner = make_runner(exclude=["accessbot-ignore=true", "/apps/"])
    runner.stale_credentials()
    assert ("partner", K.ROLE_OPEN_TRUST) not in load(sessions)


def test_the_thresholds_come_from_the_config(make_runner, sessions):
    make_runner(unused_role_age="365d", max_role_session="12h").stale_credentials()
    assert {kind for _, kind in load(sessions)} == {K.KEY_TOO_OLD, K.ROLE_OPEN_TRUST}


def test_report_mode_previews_role_findings_to_the_admins_only(make_runner, notifier):
    make_runner(mode="report").stale_credentials()
    [preview] = notifier.of("preview")
    assert preview.to == ADMINS and notifier.of("digest") == []
    owners, text, blocks = preview.detail
    assert owners == sorted(["U0ALICE", "U0CAROL", ADMINS])
    assert "role `ci`" in str(blocks)


def test_escalation_takes_role_findings_too(runner, notifier, clock):
    runner.stale_credentials()
    clock.advance(days=15)
    runner.stale_credentials()
    [escalated] = notifier.of("escalated")
    assert len(escalated.ids) == 4


def test_another_accounts_roles_are_its_own(sessions, account, owners, notifier, clock, roles):
    prod_roles = FakeRoles([role("ci", clock() - timedelta(days=5), session=7200,
                                 tags={"slack-user-id": "U0BOB"})])
    runner = Delivering(HygieneRunner(
        sessions, _catalog(), account, owners, clock=clock, roles=roles,
        accounts={PROD: AccountSide(FakeAccount(), FakeOwners(), roles=prod_roles)}), notifier)
    runner.stale_credentials()
    runner.stale_credentials(PROD)

    with sessions() as session:
        ci = session.scalars(select(CredentialFinding).where(
            CredentialFinding.iam_user == "ci")).all()
    assert {(r.account, r.owner, r.detail) for r in ci} == {
        ("", "U0ALICE", "sessions of up to 12h"), (PROD, "U0BOB", "sessions of up to 2h")}
    prod_ci = next(r for r in ci if r.account == PROD)
    assert "Done" in runner.cap_session(prod_ci.id, "U0BOB", "D0BOB")
    assert prod_roles.max_session("ci") == 3600
    assert roles.max_session("ci") == 43200  # the own account's ci is untouched


# -- the Cap button ------------------------------------------------------------------

def _ci(sessions) -> CredentialFinding:
    return load(sessions)[("ci", K.ROLE_LONG_SESSION)]


def test_the_owner_caps_the_session_and_the_card_updates(runner, roles, sessions, notifier):
    runner.stale_credentials()
    ci = _ci(sessions)

    answer = runner.cap_session(ci.id, "U0ALICE", "D0ALICE")

    assert answer == "Done: role ci now allows sessions of up to 1h."
    assert roles.max_session("ci") == 3600
    ci = _ci(sessions)
    assert ci.status is FindingStatus.RESOLVED
    assert ci.resolution == "session capped at 1h by <@U0ALICE>" and ci.resolved_by == "U0ALICE"
    [update] = notifier.of("update")
    assert update.detail[0] == ci.message_ts
    assert (FindingStatus.RESOLVED, None, None) in update.detail[1]
    with sessions() as session:
        trail = session.scalars(select(AuditEvent.detail).where(
            AuditEvent.finding_id == ci.id, AuditEvent.action == "role_session_capped")).all()
    assert trail == ["role ci's maximum session at 1h"]


def test_the_cap_is_the_configured_one(make_runner, roles, sessions):
    runner = make_runner(max_role_session="2h")
    runner.stale_credentials()
    assert "up to 2h" in runner.cap_session(_ci(sessions).id, "U0ALICE", "D0ALICE")
    assert roles.max_session("ci") == 7200


@pytest.mark.parametrize("user, channel", [("U0MALLORY", "D0ALICE"), ("U0MALLORY", ADMINS)])
def test_only_the_owner_may_cap(runner, roles, sessions, user, channel):
    runner.stale_credentials()
    with pytest.raises(NotAuthorized):
        runner.cap_session(_ci(sessions).id, user, channel)
    assert [c for c in roles.calls if c[0] != "roles"] == []  # AWS not even asked
    assert roles.max_session("ci") == 43200
    assert _ci(sessions).status is FindingStatus.OPEN


def test_a_role_capped_meanwhile_is_resolved_without_a_change(runner, roles, sessions):
    runner.stale_credentials()
    roles.set("ci", max_session=3600)
    answer = runner.cap_session(_ci(sessions).id, "U0ALICE", "D0ALICE")
    assert answer == "Nothing to do: role ci already allows sessions of at most 1h."
    assert not any(c[0] == "cap_session" for c in roles.calls)
    assert _ci(sessions).resolution == "already capped at 1h (checked live)"


def test_a_deleted_role_is_resolved_as_gone(runner, roles, sessions):
    runner.stale_credentials()
    roles.remove("ci")
    assert runner.cap_session(_ci(sessions).id, "U0ALICE", "D0ALICE") == \
        "Nothing to do: role ci no longer exists."
    assert _ci(sessions).resolution == "the role no longer exists (checked live)"


def test_a_second_click_is_told_it_is_done(runner, sessions):
    runner.stale_credentials()
    runner.cap_session(_ci(sessions).id, "U0ALICE", "D0ALICE")
    with pytest.raises(Conflict, match="already resolved: session capped"):
        runner.cap_session(_ci(sessions).id, "U0ALICE", "D0ALICE")


def test_only_long_session_findings_can_be_capped(runner, sessions):
    runner.stale_credentials()
    reports = load(sessions)[("reports", K.ROLE_UNUSED)]
    with pytest.raises(Conflict, match="Only a role's maximum session"):
        runner.cap_session(reports.id, "U0CAROL", "D0CAROL")


def test_aws_refusing_the_cap_leaves_the_finding_open(runner, roles, sessions):
    runner.stale_credentials()
    roles.refuse = True
    with pytest.raises(Exception, match="AccessDenied"):
        runner.cap_session(_ci(sessions).id, "U0ALICE", "D0ALICE")
    assert _ci(sessions).status is FindingStatus.OPEN
