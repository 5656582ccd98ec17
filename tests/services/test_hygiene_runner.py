"""HygieneRunner with fakes of the account, the owners and Slack, on SQLite and Postgres."""

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.models import AuditEvent, CredentialFinding, FindingStatus, Grant
from accessbot.services import findings
from accessbot.services.account_audit import CIS_BASELINE, PasswordPolicy
from accessbot.services.catalog import parse_catalog
from accessbot.services.errors import Conflict, NotAuthorized
from accessbot.services.hygiene import ROOT_USER, FindingKind
from accessbot.services.hygiene_runner import HygieneRunner
from tests.conftest import CATALOG
from tests.factories import active_grant
from tests.fakes.hygiene import FakeAccount, FakeOwners, HygieneMail, key_slot, row

ADMINS = "C0SECURITY"
ALICE_KEY, SVC_KEY = "AKIAALICEOLDKEY1", "AKIASERVICEKEY42"


def _catalog(**hygiene):
    return parse_catalog({**CATALOG, "hygiene": hygiene})


@pytest.fixture
def account(clock):
    now = clock().replace(microsecond=0)
    old, unused = now - timedelta(days=100), now - timedelta(days=60)
    account = FakeAccount(rows=[
        # key older than 90 days, used yesterday: rotate it
        row("alice", old, keys=(key_slot(1, old, now - timedelta(days=1), service="s3",
                                         region="eu-west-1"),)),
        # a service user's key, created 60 days ago and never used
        row("svc-deploy", unused, keys=(key_slot(1, unused),)),
        # console password without MFA, used yesterday
        row("carol", unused, password=True, password_last_used=now - timedelta(days=1),
            mfa=False),
        # nobody's user: password unused for 50 days
        row("dave", unused, password=True, password_last_used=now - timedelta(days=50)),
        row(ROOT_USER, old, mfa=False),
    ])
    # ListAccessKeys has sub-second CreateDates; the report has whole seconds
    account.add_key("alice", ALICE_KEY, old + timedelta(microseconds=250_000))
    account.add_key("svc-deploy", SVC_KEY, unused)
    return account


@pytest.fixture
def owners():
    return FakeOwners(tags={"alice": {"slack-user-id": "U0ALICE"},
                            "svc-deploy": {"owner": "C0PLATFORM"},
                            "carol": {"email": "Carol@Example.com"}},
                      emails={"carol@example.com": "U0CAROL"})


@pytest.fixture
def notifier(sessions, clock):
    return HygieneMail(sessions, _catalog(), clock)


@pytest.fixture
def make_runner(sessions, account, owners, notifier, clock):
    def make(**hygiene) -> HygieneRunner:
        return Delivering(HygieneRunner(sessions, _catalog(**hygiene), account, owners,
                                        clock=clock, owner="test-worker"), notifier)
    return make


class Delivering:
    """A runner whose sender delivers what each call owed before the call returns, as the
    bot's sender does moments later."""

    def __init__(self, runner: HygieneRunner, mail: HygieneMail):
        self._runner, self._mail = runner, mail

    def __getattr__(self, name: str):
        attr = getattr(self._runner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            finally:
                self._mail.deliver()

        return call


@pytest.fixture
def runner(make_runner):
    return make_runner()


def load(sessions) -> dict[tuple[str, str], CredentialFinding]:
    with sessions() as session:
        return {(r.iam_user, r.kind): r for r in session.scalars(select(CredentialFinding))}


def test_first_run_tells_each_owner_once_with_all_their_findings(runner, sessions, notifier):
    result = runner.stale_credentials()

    assert result["findings"] == result["new"] == 5
    assert result["owners_told"] == 4
    found = load(sessions)
    assert set(found) == {("alice", "key_too_old"), ("svc-deploy", "key_unused"),
                          ("carol", "no_mfa"), ("dave", "password_unused"),
                          (ROOT_USER, "root_no_mfa")}
    digests = {s.to: s for s in notifier.of("digest")}
    assert set(digests) == {"U0ALICE", "C0PLATFORM", "U0CAROL", ADMINS}
    # nobody's user and the root account go to the admin channel, in one message
    assert sorted(digests[ADMINS].ids) == sorted([found[("dave", "password_unused")].id,
                                                  found[(ROOT_USER, "root_no_mfa")].id])
    alice = found[("alice", "key_too_old")]
    assert alice.key_id == ALICE_KEY  # matched on CreateDate, to the second
    assert alice.owner == "U0ALICE" and alice.message_channel == "D0ALICE"
    assert alice.last_used_where == "s3 in eu-west-1"
    assert alice.last_told_at == runner.clock()


def test_keys_are_listed_only_for_users_with_key_findings(runner, account):
    runner.stale_credentials()
    listed = sorted(call[1] for call in account.calls if call[0] == "access_keys")
    assert listed == ["alice", "svc-deploy"]

    account.calls.clear()
    runner.stale_credentials()  # key ids are remembered: no more listing
    assert [call for call in account.calls if call[0] == "access_keys"] == []


def test_nobody_is_told_twice_within_the_reminder_interval(runner, notifier, clock):
    runner.stale_credentials()
    first = len(notifier.of("digest"))

    clock.advance(days=2, hours=23)
    runner.stale_credentials()
    assert len(notifier.of("digest")) == first

    clock.advance(hours=1)  # three days after the first message
    runner.stale_credentials()
    assert len(notifier.of("digest")) == 2 * first


def test_a_new_finding_brings_a_message_listing_the_old_ones_too(runner, account, notifier,
                                                                  clock, sessions):
    runner.stale_credentials()
    clock.advance(hours=1)
    now = clock().replace(microsecond=0)
    alice = account.rows[0]
    account.rows[0] = row("alice", alice.user_created, keys=alice.keys, password=True,
                          password_last_used=now, mfa=False)

    runner.stale_credentials()

    to_alice = notifier.of("digest", "U0ALICE")
    assert len(to_alice) == 2
    found = load(sessions)
    assert sorted(to_alice[1].ids) == sorted([found[("alice", "key_too_old")].id,
                                              found[("alice", "no_mfa")].id])


def test_fixed_findings_resolve_and_the_owner_is_thanked(runner, account, notifier, clock,
                                                         sessions):
    runner.stale_credentials()
    clock.advance(days=1)
    del account.rows[2]  # carol turned on MFA

    result = runner.stale_credentials()

    assert result["resolved"] == 1
    carol = load(sessions)[("carol", "no_mfa")]
    assert carol.status is FindingStatus.RESOLVED
    assert carol.resolution == findings.GONE and carol.resolved_at == clock()
    assert [s.ids for s in notifier.of("resolved", "U0CAROL")] == [[carol.id]]
    # the message that listed it is updated in place: no buttons left for it
    update = notifier.of("update", "D0CAROL")[-1]
    assert update.detail[0] == carol.message_ts
    assert update.detail[1] == [(FindingStatus.RESOLVED, None, None)]


def test_a_finding_that_comes_back_is_new_again(runner, account, sessions, clock):
    runner.stale_credentials()
    carol = account.rows.pop(2)
    clock.advance(days=1)
    runner.stale_credentials()
    account.rows.append(carol)
    clock.advance(days=1)
    runner.stale_credentials()

    with sessions() as session:
        rows = session.scalars(select(CredentialFinding).where(
            CredentialFinding.iam_user == "carol").order_by(CredentialFinding.id)).all()
    assert [r.status for r in rows] == [FindingStatus.RESOLVED, FindingStatus.OPEN]


def test_a_rotated_key_is_a_new_key(runner, account, sessions, clock):
    runner.stale_credentials()
    clock.advance(days=1)
    now = clock().replace(microsecond=0)
    account.rows[0] = row("alice", account.rows[0].user_created,
                          keys=(key_slot(1, now, now),))  # the old key is gone, a new one used
    runner.stale_credentials()

    assert load(sessions)[("alice", "key_too_old")].status is FindingStatus.RESOLVED


@pytest.mark.parametrize("tags, emails, owner", [
    ({"slack-user-id": "U0ERIN", "email": "x@example.com"}, {"x@example.com": "U0X"}, "U0ERIN"),
    ({"email": "erin@example.com"}, {"erin@example.com": "U0ERIN"}, "U0ERIN"),
    ({"email": "gone@example.com", "owner": "U0TEAMLEAD"}, {}, "U0TEAMLEAD"),
    ({"owner": "team@example.com"}, {"team@example.com": "U0TEAM"}, "U0TEAM"),
    ({"owner": "C0PLATFORM"}, {}, "C0PLATFORM"),
    ({"owner": "the platform team"}, {}, ADMINS),
    ({}, {}, ADMINS),
])
def test_owner_lookup_chain(runner, owners, tags, emails, owner):
    owners.tags["erin"] = tags
    owners.emails.update(emails)
    assert runner.owner_of("erin") == owner


def test_root_account_findings_always_go_to_the_admin_channel(runner, owners):
    owners.tags[ROOT_USER] = {"slack-user-id": "U0ALICE"}
    assert runner.owner_of(ROOT_USER) == ADMINS


def test_without_admin_channel_ownerless_findings_are_logged_not_lost(
        sessions, account, owners, notifier, clock):
    catalog = parse_catalog({k: v for k, v in CATALOG.items() if k != "admin_channel"})
    runner = HygieneRunner(sessions, catalog, account, owners, clock=clock)
    runner.stale_credentials()
    assert {s.to for s in notifier.of("digest")} == {"U0ALICE", "C0PLATFORM", "U0CAROL"}
    dave = load(sessions)[("dave", "password_unused")]
    assert dave.last_told_at is None  # told once someone configures an admin channel


def test_a_slack_outage_delays_the_messages_and_loses_none(runner, notifier, sessions, clock):
    notifier.failing = True
    assert runner.stale_credentials()["owners_told"] == 4  # owed, in the outbox
    assert notifier.sent == []
    assert all(r.message_ts is None for r in load(sessions).values())

    notifier.failing = False
    clock.advance(seconds=2)
    assert {s.to for s in notifier.of("digest")} == {"U0ALICE", "C0PLATFORM", "U0CAROL", ADMINS}
    assert all(r.message_ts is not None for r in load(sessions).values())
    assert runner.stale_credentials()["owners_told"] == 0  # not told twice


# -- clicks ----------------------------------------------------------------------------


def _finding(sessions, user: str, kind: str) -> CredentialFinding:
    return load(sessions)[(user, kind)]


def test_snooze_silences_reminders_until_it_ends(runner, sessions, notifier, clock):
    runner.stale_credentials()
    alice = _finding(sessions, "alice", "key_too_old")
    with sessions.begin() as session:
        findings.snooze(session, alice.id, "U0ALICE", "D0ALICE", clock(), timedelta(days=7))

    clock.advance(days=6, hours=23)
    runner.stale_credentials()
    assert len(notifier.of("digest", "U0ALICE")) == 1

    clock.advance(hours=1)
    runner.stale_credentials()
    assert len(notifier.of("digest", "U0ALICE")) == 2
    snoozed = _finding(sessions, "alice", "key_too_old")
    assert snoozed.snoozed_by == "U0ALICE"
    with sessions() as session:
        actions = session.scalars(select(AuditEvent.action).where(
            AuditEvent.finding_id == alice.id).order_by(AuditEvent.id)).all()
    assert actions[:3] == ["finding_opened", "finding_told", "finding_snoozed"]


@pytest.mark.parametrize("user, channel", [("U0MALLORY", "D0ALICE"), ("U0MALLORY", ADMINS)])
def test_only_the_owner_may_act_on_a_finding(runner, sessions, clock, user, channel):
    runner.stale_credentials()
    alice = _finding(sessions, "alice", "key_too_old")
    with pytest.raises(NotAuthorized), sessions.begin() as session:
        findings.will_fix(session, alice.id, user, channel, clock())
    assert _finding(sessions, "alice", "key_too_old").fixing_by is None


def test_a_finding_owned_by_a_channel_may_be_acted_on_from_that_channel(runner, sessions,
                                                                        clock):
    runner.stale_credentials()
    svc = _finding(sessions, "svc-deploy", "key_unused")
    with sessions.begin() as session:
        findings.will_fix(session, svc.id, "U0ANYONE", "C0PLATFORM", clock())
    assert _finding(sessions, "svc-deploy", "key_unused").fixing_by == "U0ANYONE"


def test_deactivate_now_rechecks_live_then_deactivates(runner, sessions, account, notifier):
    runner.stale_credentials()
    alice = _finding(sessions, "alice", "key_too_old")

    answer = runner.deactivate(alice.id, "U0ALICE", "D0ALICE")

    assert "...KEY1" in answer and "Inactive" in answer
    assert account.deactivated() == [ALICE_KEY]
    done = _finding(sessions, "alice", "key_too_old")
    assert done.status is FindingStatus.RESOLVED and done.resolved_by == "U0ALICE"
    assert notifier.of("update", "D0ALICE")[-1].detail[1] == [
        (FindingStatus.RESOLVED, None, None)]
    with pytest.raises(Conflict):  # a second click
        runner.deactivate(alice.id, "U0ALICE", "D0ALICE")
    assert account.deactivated() == [ALICE_KEY]
    with sessions() as session:  # the audit trail reads as sentences, with plain ids
        trail = [(e.actor, e.action, e.detail) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.finding_id == alice.id)
            .order_by(AuditEvent.id))]
    assert trail[0][:2] == ("accessbot", "finding_opened")
    assert re.fullmatch(r"alice has an access key past its rotation age "
                        r"\(created \d{4}-\d\d-\d\d\)", trail[0][2]), trail[0]
    assert ("U0ALICE", "key_deactivated", "alice's access key ...KEY1") in trail
    assert ("U0ALICE", "finding_resolved", "key deactivated by U0ALICE") in trail


def test_deactivate_leaves_a_key_that_changed_since_the_report(runner, sessions, account):
    runner.stale_credentials()
    alice = _finding(sessions, "alice", "key_too_old")
    account.keys["alice"] = []  # deleted by its owner meanwhile

    answer = runner.deactivate(alice.id, "U0ALICE", "D0ALICE")

    assert "no longer active" in answer
    assert account.deactivated() == []
    assert _finding(sessions, "alice", "key_too_old").status is FindingStatus.RESOLVED


def test_deactivate_is_refused_to_others_and_for_non_keys(runner, sessions, account):
    runner.stale_credentials()
    alice = _finding(sessions, "alice", "key_too_old")
    carol = _finding(sessions, "carol", "no_mfa")
    with pytest.raises(NotAuthorized):
        runner.deactivate(alice.id, "U0CAROL", "D0CAROL")
    with pytest.raises(Conflict):
        runner.deactivate(carol.id, "U0CAROL", "D0CAROL")
    assert account.deactivated() == []


# -- escalation and auto-disable ---------------------------------------------------------


def test_a_finding_snoozed_past_escalate_after_escalates_anyway(runner, sessions, notifier,
                                                                 clock):
    runner.stale_credentials()
    alice = _finding(sessions, "alice", "key_too_old")
    escalated = []
    for _ in range(3):  # snoozed again before each snooze ends: days 0, 6 and 12
        with sessions.begin() as session:
            findings.snooze(session, alice.id, "U0ALICE", "D0ALICE", clock(), timedelta(days=7))
        clock.advance(days=6)
        runner.stale_credentials()
        escalated.append({i for sent in notifier.of("escalated") for i in sent.ids})
    assert [alice.id in ids for ids in escalated] == [False, False, True]  # on day 18
    snoozed = _finding(sessions, "alice", "key_too_old")
    assert snoozed.snoozed_until > clock() and snoozed.snooze_count == 3

    assert runner.stale_credentials()["escalated"] == 0  # once
    assert len(notifier.of("digest", "U0ALICE")) == 1  # the reminders respect the snooze


def test_open_findings_escalate_once_after_escalate_after(runner, notifier, clock):
    runner.stale_credentials()
    clock.advance(days=13, hours=23)
    assert runner.stale_credentials()["escalated"] == 0

    clock.advance(hours=1)
    assert runner.stale_credentials()["escalated"] == 5
    assert [s.to for s in notifier.of("escalated")] == [ADMINS]

    clock.advance(days=3)
    assert runner.stale_credentials()["escalated"] == 0


def test_auto_disable_is_off_by_default(runner, account, clock):
    runner.stale_credentials()
    clock.advance(days=100)
    runner.stale_credentials()
    assert account.deactivated() == []


def test_auto_disable_warns_first_then_deactivates(make_runner, account, notifier, clock,
                                                   sessions):
    runner = make_runner(auto_disable_after="10d", final_warning="1d")
    runner.stale_credentials()
    clock.advance(days=10)
    runner.stale_credentials()
    assert {s.to for s in notifier.of("final_warning")} == {"U0ALICE", "C0PLATFORM"}
    assert account.deactivated() == []

    clock.advance(hours=23)
    runner.stale_credentials()
    assert account.deactivated() == []

    clock.advance(hours=1)
    assert runner.stale_credentials()["auto_disabled"] == 2
    assert sorted(account.deactivated()) == sorted([ALICE_KEY, SVC_KEY])
    alice = _finding(sessions, "alice", "key_too_old")
    assert alice.resolution == "key deactivated by accessbot (auto-disable)"


def test_auto_disable_never_acts_without_a_delivered_warning(make_runner, account, notifier,
                                                             clock):
    runner = make_runner(auto_disable_after="10d", final_warning="1d")
    runner.stale_credentials()
    clock.advance(days=10)
    notifier.failing = True
    runner.stale_credentials()
    notifier.failing = False
    clock.advance(days=2)
    runner.stale_credentials()  # warned now, not disabled
    assert account.deactivated() == []
    assert len(notifier.of("final_warning")) == 2


def test_auto_disable_skips_a_key_used_again(make_runner, account, clock):
    runner = make_runner(auto_disable_after="10d", final_warning="1d")
    runner.stale_credentials()
    clock.advance(days=10)
    runner.stale_credentials()
    account.keys["svc-deploy"] = []  # rotated away meanwhile
    clock.advance(days=1)
    runner.stale_credentials()
    assert account.deactivated() == [ALICE_KEY]


# -- scheduling ----------------------------------------------------------------------------


def test_a_report_still_being_generated_is_tried_again_not_empty(runner, account, sessions,
                                                                 clock):
    account.not_ready = 1
    day = timedelta(days=1)
    result = runner.run_if_due("stale-credentials", day, runner.stale_credentials)
    assert "retry_later" in result
    assert load(sessions) == {}

    clock.advance(minutes=5)
    result = runner.run_if_due("stale-credentials", day, runner.stale_credentials)
    assert result["findings"] == 5


def test_a_finished_run_is_not_repeated_within_its_period(runner, clock, sessions, owners,
                                                          account, notifier):
    day = timedelta(days=1)
    assert runner.run_if_due("stale-credentials", day, runner.stale_credentials) is not None
    clock.advance(hours=23)
    # another process (or this one after a restart) on the same database
    other = HygieneRunner(sessions, runner.catalog, account, owners, clock=clock)
    assert other.run_if_due("stale-credentials", day, other.stale_credentials) is None
    clock.advance(hours=1)
    assert other.run_if_due("stale-credentials", day, other.stale_credentials) is not None


# -- weekly ------------------------------------------------------------------------------


def test_weekly_summary_counts_and_trend(runner, account, notifier, clock):
    runner.stale_credentials()
    clock.advance(days=8)
    del account.rows[2]  # carol fixed hers
    now = clock().replace(microsecond=0)
    account.rows.append(row("erin", now - timedelta(days=50), password=True,
                            password_last_used=now - timedelta(days=46)))
    runner.stale_credentials()

    result = runner.weekly_summary()

    assert result == {"open": 5, "new": 1, "resolved": 1}
    summary = notifier.of("summary", ADMINS)[-1].detail
    assert summary.open_by_kind[FindingKind.PASSWORD_UNUSED.value] == 2
    assert summary.open_last_week_by_kind[FindingKind.NO_MFA.value] == 1
    assert FindingKind.NO_MFA.value not in summary.open_by_kind
    assert summary.oldest.iam_user == "alice"


def test_account_audit_reports_every_deviation(runner, account, notifier, sessions, clock):
    account.policy = PasswordPolicy(minimum_length=8, reuse_prevention=24,
                                    require_symbols=True, require_numbers=True,
                                    require_uppercase=True, require_lowercase=False,
                                    allow_users_to_change=True)
    account.admins = {"alice"}
    account.groups = {"prod-admins": {"alice", "mallory"}}
    active_grant(sessions, runner.catalog, clock(), iam_user="alice")  # explains alice

    result = runner.account_audit()

    details = result["deviations"]
    assert any("minimum password length: 8" in d for d in details)
    assert any("lowercase" in d for d in details)
    assert any("1 IAM user(s) hold administrator access (alice)" in d for d in details)
    assert [d for d in details if "without an active accessbot grant" in d] == [
        "mallory is in prod-admins without an active accessbot grant"]
    assert len(details) == 4
    assert notifier.of("audit", ADMINS)
    with sessions() as session:  # reported, never imported as grants
        assert len(session.scalars(select(Grant)).all()) == 1


def test_account_audit_with_no_password_policy(runner, account):
    account.admins = {"alice", "bob"}
    details = runner.account_audit()["deviations"]
    assert len(details) == sum(1 for v in CIS_BASELINE.__dict__.values() if v)


def test_auto_disable_leaves_a_key_the_live_recheck_finds_in_use(make_runner, account, clock):
    runner = make_runner(auto_disable_after="10d", final_warning="1d")
    runner.stale_credentials()
    clock.advance(days=10)
    runner.stale_credentials()
    account.last_used[SVC_KEY] = clock() - timedelta(hours=2)  # used since the report
    account.last_used[ALICE_KEY] = clock() - timedelta(hours=2)  # over age: used or not
    clock.advance(days=1)
    runner.stale_credentials()
    assert account.deactivated() == [ALICE_KEY]
    assert ("key_last_used", SVC_KEY) in account.calls


def test_many_findings_for_one_owner_are_split_to_fit_slack(runner, account, notifier, clock):
    now = clock().replace(microsecond=0)
    account.rows = [row(f"svc-{n:02}", now - timedelta(days=60), password=True, mfa=False)
                    for n in range(20)]  # no tags: all to the admin channel, 2 findings each

    assert runner.stale_credentials()["owners_told"] == 1

    sizes = [len(s.ids) for s in notifier.of("digest", ADMINS)]
    assert sizes == [15, 15, 10]


def test_the_first_summary_comes_a_period_after_the_first_start(runner, clock):
    week = timedelta(days=7)
    assert runner.run_if_due("hygiene-summary", week, runner.weekly_summary,
                             first_after_a_period=True) is None
    clock.advance(days=7)
    assert runner.run_if_due("hygiene-summary", week, runner.weekly_summary,
                             first_after_a_period=True) is not None


def test_auto_disable_that_aws_refuses_is_tried_again_and_others_go_on(make_runner, account,
                                                                       clock, sessions):
    runner = make_runner(auto_disable_after="10d", final_warning="1d")
    runner.stale_credentials()
    clock.advance(days=10)
    runner.stale_credentials()
    clock.advance(days=1)
    account.refuse_deactivate = {"alice"}
    assert runner.stale_credentials()["auto_disabled"] == 1
    assert account.deactivated() == [SVC_KEY]
    assert _finding(sessions, "alice", "key_too_old").status is FindingStatus.OPEN

    account.refuse_deactivate = set()
    clock.advance(days=1)
    assert runner.stale_credentials()["auto_disabled"] == 1
    assert account.deactivated() == [SVC_KEY, ALICE_KEY]


def test_an_owner_slack_cannot_look_up_is_told_later_not_the_admins(runner, owners, notifier,
                                                                     sessions, clock):
    owners.slack_down = True
    runner.stale_credentials()
    assert notifier.of("digest", "U0CAROL") == []
    carol = _finding(sessions, "carol", "no_mfa")
    assert carol.last_told_at is None
    assert notifier.of("digest", ADMINS)  # the others are told as usual
    assert all(carol.id not in s.ids for s in notifier.of("digest", ADMINS))

    owners.slack_down = False
    clock.advance(minutes=5)
    runner.stale_credentials()
    assert len(notifier.of("digest", "U0CAROL")) == 1


def test_each_email_is_looked_up_once_per_run(runner, owners, account, clock):
    now = clock().replace(microsecond=0)
    owners.tags["carol-ci"] = {"email": "carol@example.com"}
    account.rows.append(row("carol-ci", now - timedelta(days=60), password=True, mfa=False))
    runner.stale_credentials()
    assert owners.lookups == ["carol@example.com"]


def test_a_job_never_runs_beside_itself(runner, sessions, account, owners, notifier, clock):
    other = HygieneRunner(sessions, runner.catalog, account, owners, clock=clock)
    inside = []

    def job():  # while this run holds the lease, another process asks to run it now
        inside.append(other.run_if_due("stale-credentials", timedelta(0), other.stale_credentials))
        return {}

    assert runner.run_if_due("stale-credentials", timedelta(0), job) == {}
    assert inside == [None]
    assert other.run_if_due("stale-credentials", timedelta(0), lambda: {"ran": 1}) == {"ran": 1}


def test_a_reminder_replaces_the_earlier_message(runner, notifier, clock):
    runner.stale_credentials()
    [first] = notifier.of("digest", "U0ALICE")
    clock.advance(days=3)
    runner.stale_credentials()

    assert len(notifier.of("digest", "U0ALICE")) == 2
    # the first message loses its buttons and points to the newer one
    assert [s.detail for s in notifier.of("superseded", "D0ALICE")] == [first.ts]


@pytest.mark.parametrize("exclude", [["svc-deploy"], ["/service/"], ["accessbot-ignore=true"]])
def test_excluded_users_are_never_told(make_runner, owners, notifier, sessions, exclude):
    """By name, by path prefix or by tag: a service user rotated by other means."""
    owners.paths["svc-deploy"] = "/service/ci/"
    owners.tags["svc-deploy"]["accessbot-ignore"] = "true"
    result = make_runner(exclude=exclude).stale_credentials()
    assert result["excluded"] == 1 and result["findings"] == 4
    assert ("svc-deploy", "key_unused") not in load(sessions)
    assert "C0PLATFORM" not in {s.to for s in notifier.of("digest")}
    assert {s.to for s in notifier.of("digest")} == {"U0ALICE", "U0CAROL", ADMINS}


def test_a_user_excluded_later_is_dropped_without_a_thank_you(make_runner, notifier, sessions,
                                                             clock):
    make_runner().stale_credentials()
    told = load(sessions)[("svc-deploy", "key_unused")]
    assert told.last_told_at is not None

    clock.advance(days=1)
    make_runner(exclude=["svc-deploy"]).stale_credentials()
    with sessions() as session:
        row = session.get(CredentialFinding, told.id)
    assert row.status is FindingStatus.RESOLVED
    assert row.resolution == "the user is excluded (hygiene.exclude)"
    assert notifier.of("resolved", "C0PLATFORM") == []  # nobody fixed anything


def test_the_root_user_cannot_be_excluded(make_runner, sessions):
    result = make_runner(exclude=["/"]).stale_credentials()  # the path of every IAM user
    assert result["excluded"] == 4
    assert set(load(sessions)) == {(ROOT_USER, "root_no_mfa")}


def test_report_mode_tells_the_admins_once_and_nobody_else(make_runner, notifier, sessions,
                                                          clock, account):
    """A gentle rollout: see what would be sent, to whom, before anybody is messaged."""
    result = make_runner(mode="report", auto_disable_after="1d").stale_credentials()
    assert result["mode"] == "report" and result["owners_told"] == 0
    assert [s.to for s in notifier.sent] == [ADMINS]
    preview, = notifier.of("preview")
    owners, text, body = preview.detail
    assert owners == sorted(["U0ALICE", "C0PLATFORM", "U0CAROL", ADMINS])
    assert text.startswith(":mag: Credential hygiene (report mode): 5 finding(s) would be "
                           "sent to 4 owner(s). Nobody was messaged.")
    rendered = str(body)
    assert "`U0ALICE`" in rendered and "<@U0ALICE>" not in rendered  # no mention: no ping
    assert "`svc-deploy`" in rendered
    assert all(r.last_told_at is None for r in load(sessions).values())

    clock.advance(days=30)  # nothing escalates, nothing is disabled, in report mode
    make_runner(mode="report", auto_disable_after="1d").stale_credentials()
    assert {s.kind for s in notifier.sent} == {"preview"} and account.deactivated() == []

    make_runner().stale_credentials()  # then notify: everyone is told, once
    assert {s.to for s in notifier.of("digest")} == {"U0ALICE", "C0PLATFORM", "U0CAROL",
                                                      ADMINS}


def test_a_key_both_old_and_unused_is_snoozed_and_fixed_as_one(make_runner, account, owners,
                                                               notifier, sessions, clock):
    """One card per key: its one Snooze (or I'll fix it) covers both of its findings, so
    the next reminder does not bring back the other half."""
    now = clock().replace(microsecond=0)
    account.rows.append(row("bob", now - timedelta(days=100),
                            keys=(key_slot(1, now - timedelta(days=100)),)))
    owners.tags["bob"] = {"slack-user-id": "U0BOB"}
    make_runner().stale_credentials()
    digest, = notifier.of("digest", "U0BOB")
    assert {"key_too_old", "key_unused"} <= {kind for kind, _, _ in digest.detail}
    unused = load(sessions)[("bob", "key_unused")]
    with sessions.begin() as session:
        findings.snooze(session, unused.id, "U0BOB", "D0BOB", clock(), timedelta(days=7))
    both = [load(sessions)[("bob", kind)] for kind in ("key_unused", "key_too_old")]
    assert all(r.snoozed_by == "U0BOB" and r.snoozed_until for r in both)
    with sessions.begin() as session:
        findings.will_fix(session, unused.id, "U0BOB", "D0BOB", clock())
    assert load(sessions)[("bob", "key_too_old")].fixing_by == "U0BOB"

    clock.advance(days=4)  # past reminder_interval, within the snooze: neither half of
    make_runner().stale_credentials()  # the key is reminded (the unused user still is)
    reminder = notifier.of("digest", "U0BOB")[-1]
    assert [kind for kind, _, _ in reminder.detail] == ["user_inactive"]


def test_a_2000_user_run_posts_one_message_per_channel(make_runner, account, owners,
                                                     notifier, clock):
    """2,000 users: 40 owned by a person (one DM each), 200 by a team channel, 1,760 by
    nobody. Each channel gets one message: the counts, the oldest and every finding in a
    CSV; the run lists the keys of 100 users at most (200 have keys). `make bench-hygiene`
    runs 10,000."""
    now = clock().replace(microsecond=0)
    account.rows, owners.tags = [], {}
    for n in range(2_000):
        user = f"svc-{n:05}"
        if n % 10 == 0:  # an access key: unused, too old, and nothing else used: 3 findings
            account.rows.append(row(user, now - timedelta(days=200 - n % 50),
                                    keys=(key_slot(1, now - timedelta(days=120 + n % 7)),)))
        else:  # a console password without MFA, used yesterday: 1 finding
            account.rows.append(row(user, now - timedelta(days=300), password=True, mfa=False,
                                    password_last_used=now - timedelta(days=1)))
        if n % 50 == 1:
            owners.tags[user] = {"slack-user-id": f"U{n:07}"}
        elif n % 10 == 3:
            owners.tags[user] = {"owner": "C0PLATFORM"}
    runner = make_runner()
    result = runner.stale_credentials()

    assert result["findings"] == 2_400 and result["owners_told"] == 40 + 2
    by_recipient = Counter(s.to for s in notifier.of("list") + notifier.of("digest"))
    assert by_recipient.pop(ADMINS) == 1 and by_recipient.pop("C0PLATFORM") == 1
    assert len(by_recipient) == 40 and set(by_recipient.values()) == {1}  # a DM each
    [listing] = notifier.of("list", ADMINS)
    comment, table = listing.detail
    assert comment.startswith(":key: *2,160 stale credential findings for 1,760 IAM users*")
    assert ("• Console password without MFA: 1,560\n• Access key not rotated: 200\n"
            "• Access key unused: 200\n• IAM user not used at all: 200") in comment
    assert comment.count("\n• ") == 4 + 10  # the kinds, and the 10 oldest
    lines = table.splitlines()
    assert lines[0] == ("account,iam_user,finding,credential,open_since,last_used,"
                        "last_used_where,key_id")
    assert len(lines) == 1 + 2_160 and lines[1].startswith(
        "own,svc-00000,Access key not rotated,access key 1 created ")
    assert sum(call[0] == "access_keys" for call in account.calls) == 100

    clock.advance(days=1)
    sent = len(notifier.sent)
    runner.stale_credentials()  # within the reminder interval: nothing more to anyone
    notifier.deliver()
    assert len(notifier.sent) == sent


def test_a_key_not_looked_up_yet_is_found_at_the_click(make_runner, account, sessions, owners,
                                                        clock):
    from accessbot.services import hygiene_runner
    now = clock().replace(microsecond=0)
    created = now - timedelta(days=60)
    account.rows = [row(f"u{n}", created, keys=(key_slot(1, created),)) for n in range(3)]
    for n in range(3):
        account.add_key(f"u{n}", f"AKIAUSER{n}KEY00000", created)
        owners.tags[f"u{n}"] = {"slack-user-id": "U0ALICE"}
    hygiene_runner.KEY_MATCH_BUDGET, budget = 1, hygiene_runner.KEY_MATCH_BUDGET
    try:
        runner = make_runner()
        runner.stale_credentials()
    finally:
        hygiene_runner.KEY_MATCH_BUDGET = budget
    unmatched = _finding(sessions, "u2", "key_unused")
    assert unmatched.key_id is None

    said = runner.deactivate(unmatched.id, "U0ALICE", None)
    assert said == "Done: access key ...0000 of u2 is Inactive."
    assert account.deactivated() == ["AKIAUSER2KEY00000"]
    assert _finding(sessions, "u2", "key_unused").status is FindingStatus.RESOLVED


class FakeStanding:
    """StandingAccess: who holds the catalog's Identity Center access."""

    def __init__(self, assigned: dict, members: dict, names: dict):
        self._assigned, self._members, self._names = assigned, members, names

    def assigned(self, permission_set: str, account: str) -> set[str]:
        return set(self._assigned.get((permission_set, account), ()))

    def members(self, group: str) -> set[str]:
        return set(self._members.get(group, ()))

    def user_name(self, user_id: str) -> str:
        return self._names.get(user_id, user_id)


def test_account_audit_reports_identity_center_access_that_no_grant_explains(
        sessions, account, owners, clock):
    from tests.factories import make_catalog

    catalog = make_catalog({
        "ps": {"kind": "sso_permission_set", "permission_set": "Admin",
               "accounts": ["222222222222", "333333333333"], "approvers": ["U0BOB"]},
        "oncall": {"kind": "sso_group", "group": "oncall", "approvers": ["U0BOB"]}})
    standing = FakeStanding(
        assigned={("Admin", "222222222222"): {"u-alice", "u-mallory"},
                  ("Admin", "333333333333"): {"u-alice"}},
        members={"oncall": {"u-eve"}}, names={"u-mallory": "mallory@example.com", "u-eve": "eve"})
    active_grant(sessions, catalog, clock(), resource="ps", iam_user="u-alice")  # both accounts
    runner = HygieneRunner(sessions, catalog, account, owners, clock=clock, standing=standing)

    details = runner.account_audit()["deviations"]

    assert [d for d in details if "without an active accessbot grant" in d] == [
        "eve holds Identity Center group oncall without an active accessbot grant",
        "mallory@example.com holds permission set Admin in account 222222222222 without an "
        "active accessbot grant"]
    with sessions() as session:  # reported, never imported as grants
        assert len(session.scalars(select(Grant)).all()) == 1


PROD = "222222222222"


@pytest.fixture
def two_accounts(sessions, account, owners, notifier, clock):
    """The bot's own account (the fixtures above) and prod, each with its own report, keys
    and IAM user tags; both have an alice."""
    from accessbot.services.hygiene_runner import AccountSide

    now = clock().replace(microsecond=0)
    old = now - timedelta(days=100)
    prod = FakeAccount(rows=[row("alice", old, keys=(key_slot(1, old, now),)),
                             row("batch", old, keys=(key_slot(1, old, now),))])
    prod.add_key("alice", "AKIAPRODALICEKEY", old)
    prod.add_key("batch", "AKIAPRODBATCHKEY", old)
    prod_owners = FakeOwners(tags={"alice": {"slack-user-id": "U0ALICE"},
                                   "batch": {"owner": "C0BATCH"}})
    catalog = parse_catalog({**CATALOG, "accounts": {"prod": {
        "id": PROD, "role_arn": f"arn:aws:iam::{PROD}:role/accessbot"}}})
    runner = Delivering(HygieneRunner(sessions, catalog, account, owners, clock=clock,
                                      owner="test-worker",
                                      accounts={PROD: AccountSide(prod, prod_owners)}),
                        notifier)
    return runner, prod


def test_each_account_has_its_own_findings_named_by_it(two_accounts, sessions, notifier):
    runner, prod = two_accounts
    assert runner.stale_credentials()["findings"] == 5
    result = runner.stale_credentials(PROD)

    assert (result["account"], result["findings"], result["new"]) == (PROD, 2, 2)
    with sessions() as session:
        by_account = Counter(r.account for r in session.scalars(select(CredentialFinding)
                                                                .where(CredentialFinding
                                                                       .status == "OPEN")))
    assert by_account == {"": 5, PROD: 2}  # prod's run resolved nothing of the own account
    [batch] = notifier.of("digest", "C0BATCH")  # the owner from prod's own tags
    with sessions() as session:
        [row_] = findings.get_findings(session, batch.ids)
        assert (row_.account, row_.iam_user) == (PROD, "batch")
        opened = session.scalars(select(AuditEvent.detail).where(
            AuditEvent.finding_id == row_.id)).all()
    assert any(f"(account {PROD})" in d for d in opened)
    assert len(notifier.of("digest", "U0ALICE")) == 2  # alice: one DM per account

    prod.rows = []  # fixed in prod: only prod's findings resolve
    runner.stale_credentials(PROD)
    with sessions() as session:
        still_open = {(r.account, r.iam_user) for r in session.scalars(
            select(CredentialFinding).where(CredentialFinding.status == "OPEN"))}
    assert {a for a, _ in still_open} == {""} and len(still_open) == 5


def test_a_key_of_another_account_is_deactivated_there(two_accounts, sessions, account):
    runner, prod = two_accounts
    runner.stale_credentials(PROD)
    with sessions() as session:
        alice = session.scalar(select(CredentialFinding).where(
            CredentialFinding.account == PROD, CredentialFinding.iam_user == "alice"))

    answer = runner.deactivate(alice.id, "U0ALICE", "D0ALICE")

    assert answer == "Done: access key ...EKEY of alice is Inactive."
    assert ("deactivate_key", "alice", "AKIAPRODALICEKEY") in prod.calls
    assert not any(call[0] == "deactivate_key" for call in account.calls)


def test_the_account_audit_of_another_account_reads_that_account(two_accounts, account,
                                                                 notifier):
    runner, prod = two_accounts
    prod.policy = PasswordPolicy(minimum_length=8, reuse_prevention=24, require_symbols=True,
                                 require_numbers=True, require_uppercase=True,
                                 require_lowercase=False, allow_users_to_change=True)
    prod.admins = {"alice", "bob"}

    result = runner.account_audit(PROD)

    assert result["account"] == PROD
    assert any("minimum password length: 8" in d for d in result["deviations"])
    assert not any(call[0] == "password_policy" for call in account.calls)
    assert notifier.of("audit", ADMINS)
    [posted] = notifier.client.posted(ADMINS)
    assert posted["text"].startswith(f":clipboard: Account audit of {PROD}: ")


def test_an_account_whose_role_is_refused_waits_and_the_admins_hear_once(
        two_accounts, sessions, notifier):
    from accessbot.models import JobRun
    from accessbot.services.ports import AccountUnreachable

    runner, prod = two_accounts
    refused = AccountUnreachable(f"cannot assume the role of account {PROD}: AccessDenied",
                                 PROD)
    prod.report = lambda: (_ for _ in ()).throw(refused)
    day = timedelta(days=1)
    for _ in range(2):
        result = runner.run_if_due("stale-credentials", day,
                                   lambda: runner.stale_credentials(PROD), account=PROD)
        assert "cannot assume the role" in result["retry_later"]
    assert runner.run_if_due("stale-credentials", day, runner.stale_credentials) is not None
    [alert] = notifier.of("admin_alert", ADMINS)
    assert f"AWS account {PROD}: accessbot cannot assume its role" in alert.detail

    del prod.report  # the role is trusted again
    assert runner.run_if_due("stale-credentials", day, lambda: runner.stale_credentials(PROD),
                             account=PROD)["findings"] == 2
    alerts = notifier.of("admin_alert", ADMINS)
    assert len(alerts) == 2 and "answers again" in alerts[1].detail
    with sessions() as session:
        assert {r.name for r in session.scalars(select(JobRun))} == {
            "stale-credentials", f"stale-credentials:{PROD}"}
