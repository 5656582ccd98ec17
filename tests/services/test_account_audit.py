"""The account audit's decisions, as pure functions."""

from accessbot.services.account_audit import (
    CIS_BASELINE,
    PasswordPolicy,
    administrator_deviations,
    password_policy_deviations,
    unmanaged_member_deviations,
)


def test_a_policy_meeting_the_baseline_has_no_deviation():
    assert password_policy_deviations(CIS_BASELINE, CIS_BASELINE) == []
    stronger = PasswordPolicy(**{**CIS_BASELINE.__dict__, "minimum_length": 20,
                                 "max_age_days": 90})
    assert password_policy_deviations(stronger, CIS_BASELINE) == []


def test_each_weaker_setting_is_one_deviation():
    weak = PasswordPolicy(**{**CIS_BASELINE.__dict__, "minimum_length": 13,
                             "reuse_prevention": None, "require_symbols": False})
    found = password_policy_deviations(weak, CIS_BASELINE)
    assert [d.subject for d in found] == ["minimum_length", "reuse_prevention",
                                          "require_symbols"]
    assert found[0].detail == "minimum password length: 13, baseline at least 14"
    assert found[1].detail.startswith("passwords remembered (reuse prevention): not set")


def test_no_policy_deviates_from_every_baseline_setting():
    found = password_policy_deviations(None, CIS_BASELINE)
    assert len(found) == 7
    assert {d.check for d in found} == {"password_policy"}


def test_max_age_is_checked_only_when_the_baseline_sets_one():
    baseline = PasswordPolicy(max_age_days=90)
    assert [d.subject for d in password_policy_deviations(
        PasswordPolicy(max_age_days=365), baseline)] == ["max_age_days"]
    assert password_policy_deviations(PasswordPolicy(max_age_days=60), baseline) == []
    assert password_policy_deviations(PasswordPolicy(), PasswordPolicy()) == []


def test_administrators():
    assert administrator_deviations({"alice", "bob"}, 2) == []
    [one] = administrator_deviations({"alice"}, 2)
    assert "1 IAM user(s) hold administrator access (alice)" in one.detail
    [none] = administrator_deviations(set(), 2)
    assert "(none)" in none.detail
    assert administrator_deviations(set(), 0) == []


def test_unmanaged_members_are_those_without_a_live_grant():
    found = unmanaged_member_deviations(
        {"prod-admins": {"alice", "mallory"}, "db-admins": {"eve"}, "empty": set()},
        {"prod-admins": {"alice"}})
    assert [(d.subject, d.detail.split()[0]) for d in found] == [
        ("db-admins", "eve"), ("prod-admins", "mallory")]
