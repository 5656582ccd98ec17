"""evaluate_roles() and open_trust() over hand-built role facts and trust policies."""

from datetime import UTC, datetime, timedelta

import pytest

from accessbot.services.hygiene import FindingKind, HygienePolicy, describe
from accessbot.services.role_hygiene import RoleFacts, evaluate_roles, open_trust

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
POLICY = HygienePolicy()  # unused_role_age 90 days, max_role_session 1h
OWN, OTHER = "123456789012", "999988887777"
K = FindingKind
SERVICE = {"Service": "ec2.amazonaws.com"}


def ago(**parts: float) -> datetime:
    return NOW - timedelta(**parts)


def trust(principal, condition=None, effect="Allow", key="Principal") -> dict:
    statement = {"Effect": effect, key: principal, "Action": "sts:AssumeRole"}
    if condition is not None:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def role(name="app", *, path="/", created=None, used=None, region=None,
         document=None, session=3600) -> RoleFacts:
    """A role created 10 days ago, never used, trusting EC2, sessions of 1h."""
    return RoleFacts(name=name, arn=f"arn:aws:iam::{OWN}:role{path}{name}", path=path,
                     created=created or ago(days=10), last_used=used,
                     last_used_region=region,
                     trust_policy=document if document is not None else trust(SERVICE),
                     max_session=session)


def kinds(*roles: RoleFacts, policy=POLICY) -> list[tuple[str, FindingKind]]:
    return [(f.iam_user, f.kind) for f in evaluate_roles(list(roles), policy, NOW)]


# -- unused ------------------------------------------------------------------------

def test_a_role_never_used_and_older_than_the_age_is_unused():
    [finding] = evaluate_roles([role(created=ago(days=91))], POLICY, NOW)
    assert (finding.kind, finding.subject, finding.iam_user) == (K.ROLE_UNUSED, "role", "app")
    assert finding.since == ago(days=91) and finding.last_used is None


def test_a_new_role_never_used_is_not_unused_yet():
    assert kinds(role(created=ago(days=89))) == []


def test_a_role_used_long_ago_is_unused_since_its_last_use():
    [finding] = evaluate_roles([role(created=ago(days=400), used=ago(days=120),
                                     region="eu-west-1")], POLICY, NOW)
    assert finding.kind is K.ROLE_UNUSED
    assert finding.since == finding.last_used == ago(days=120)
    assert finding.last_used_where == "eu-west-1"


def test_an_old_role_used_recently_is_fine():
    assert kinds(role(created=ago(days=400), used=ago(days=2))) == []


def test_the_age_comes_from_the_policy():
    old = role(created=ago(days=31))
    assert kinds(old) == []
    assert kinds(old, policy=HygienePolicy(unused_role_age=timedelta(days=30))) == [
        ("app", K.ROLE_UNUSED)]


# -- long sessions -----------------------------------------------------------------

def test_a_session_longer_than_the_cap_is_a_finding_saying_how_long():
    [finding] = evaluate_roles([role(session=43200)], POLICY, NOW)
    assert (finding.kind, finding.subject) == (K.ROLE_LONG_SESSION, "session")
    assert finding.detail == "sessions of up to 12h"


def test_a_session_at_the_cap_is_fine_and_the_cap_comes_from_the_policy():
    assert kinds(role(session=3600)) == []
    assert kinds(role(session=7200), policy=HygienePolicy(
        max_role_session=timedelta(hours=2))) == []
    assert kinds(role(session=7201), policy=HygienePolicy(
        max_role_session=timedelta(hours=2))) == [("app", K.ROLE_LONG_SESSION)]


@pytest.mark.parametrize("path", ["/aws-service-role/ecs.amazonaws.com/",
                                  "/aws-reserved/sso.amazonaws.com/eu-west-1/"])
def test_roles_customers_cannot_change_are_never_unused_or_long(path):
    assert kinds(role(path=path, created=ago(days=900), session=43200)) == []


def test_an_aws_managed_role_is_still_checked_for_open_trust():
    assert kinds(role(path="/aws-reserved/sso.amazonaws.com/", document=trust("*"))) == [
        ("app", K.ROLE_OPEN_TRUST)]


# -- trust -------------------------------------------------------------------------

@pytest.mark.parametrize("principal, said", [
    ("*", ["anyone"]),
    ({"AWS": "*"}, ["anyone"]),
    ({"AWS": ["*"]}, ["anyone"]),
    ({"AWS": f"arn:aws:iam::{OTHER}:root"}, [f"account {OTHER}"]),
    ({"AWS": OTHER}, [f"account {OTHER}"]),
    ({"AWS": f"arn:aws:iam::{OTHER}:role/ci"}, [f"account {OTHER}"]),
    ({"AWS": [f"arn:aws:iam::{OWN}:root", f"arn:aws-cn:iam::{OTHER}:user/bob",
              "111122223333"]}, [f"account {OTHER}", "account 111122223333"]),
])
def test_open_trust_names_who_may_come_in(principal, said):
    assert open_trust(trust(principal), OWN) == said


@pytest.mark.parametrize("principal", [
    {"AWS": f"arn:aws:iam::{OWN}:root"},
    {"AWS": OWN},
    {"AWS": f"arn:aws:iam::{OWN}:role/admin"},
    SERVICE,
    {"Service": ["lambda.amazonaws.com", "ecs-tasks.amazonaws.com"]},
    {"AWS": "AROAEXAMPLEDELETED1"},  # a deleted principal's unique id: nobody
])
def test_own_account_services_and_unknowns_are_not_open(principal):
    assert open_trust(trust(principal), OWN) == []


@pytest.mark.parametrize("condition", [
    {"StringEquals": {"sts:ExternalId": "e1"}},
    {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}},
    {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-abc/r-1/*"]}},
    {"StringEquals": {"aws:SourceOrgID": "o-abc"}},
    {"StringEquals": {"AWS:ResourceOrgId": "o-abc"}},  # keys are case-insensitive
])
def test_another_account_with_an_external_id_or_organization_condition_is_fine(condition):
    assert open_trust(trust({"AWS": OTHER}, condition), OWN) == []


def test_a_null_test_on_the_external_id_keeps_nobody_out():
    condition = {"Null": {"sts:ExternalId": "false"}}
    assert open_trust(trust({"AWS": OTHER}, condition), OWN) == [f"account {OTHER}"]


def test_anyone_with_only_an_external_id_is_still_anyone():
    assert open_trust(trust("*", {"StringEquals": {"sts:ExternalId": "e"}}), OWN) == [
        "anyone"]


@pytest.mark.parametrize("condition", [
    {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}},
    {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{OWN}:role/ci-*"}},
    {"StringEquals": {"aws:PrincipalAccount": OWN}},
])
def test_anyone_narrowed_to_the_organization_or_named_principals_is_fine(condition):
    assert open_trust(trust({"AWS": "*"}, condition), OWN) == []


def test_federated_principals_with_conditions_are_fine_and_without_are_open():
    github = f"arn:aws:iam::{OWN}:oidc-provider/token.actions.githubusercontent.com"
    condition = {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:o/r:*"}}
    assert open_trust(trust({"Federated": github}, condition), OWN) == []
    assert open_trust(trust({"Federated": github}), OWN) == [
        "any user of token.actions.githubusercontent.com"]


def test_a_deny_statement_never_makes_a_finding():
    assert open_trust(trust("*", effect="Deny"), OWN) == []
    assert open_trust(trust({"AWS": OTHER}, effect="Deny"), OWN) == []
    assert open_trust(trust({"AWS": OTHER}, effect="Deny", key="NotPrincipal"), OWN) == []


def test_allow_with_not_principal_is_everyone_else():
    document = trust({"AWS": f"arn:aws:iam::{OWN}:root"}, key="NotPrincipal")
    assert open_trust(document, OWN) == ["anyone (NotPrincipal)"]
    org = {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}
    assert open_trust(trust({"AWS": OWN}, org, key="NotPrincipal"), OWN) == []


def test_each_one_is_named_once_across_statements():
    document = {"Statement": [trust({"AWS": OTHER})["Statement"][0],
                              trust({"AWS": f"arn:aws:iam::{OTHER}:root"})["Statement"][0],
                              trust(SERVICE)["Statement"][0]]}
    assert open_trust(document, OWN) == [f"account {OTHER}"]


def test_an_open_trust_finding_says_who_and_the_own_account_comes_from_the_arn():
    [finding] = evaluate_roles([role(document=trust({"AWS": [OTHER, "*"]}))], POLICY, NOW)
    assert (finding.kind, finding.subject) == (K.ROLE_OPEN_TRUST, "trust")
    assert finding.detail == f"trusts account {OTHER}, anyone"
    own = role(document=trust({"AWS": OWN}))
    assert kinds(own) == []
    # told another own account, the role's own account id is "another"
    assert [f.kind for f in evaluate_roles([own], POLICY, NOW, own_account=OTHER)] == [
        K.ROLE_OPEN_TRUST]


def test_a_long_list_of_accounts_is_cut_to_the_column():
    many = [f"{n:012d}" for n in range(1, 40)]
    [finding] = evaluate_roles([role(document=trust({"AWS": many}))], POLICY, NOW)
    assert len(finding.detail) == 200 and finding.detail.endswith("…")


def test_one_role_can_have_every_finding_in_order():
    bad = role(created=ago(days=200), session=7200, document=trust("*"))
    assert kinds(bad, role("fine")) == [("app", K.ROLE_UNUSED), ("app", K.ROLE_LONG_SESSION),
                                        ("app", K.ROLE_OPEN_TRUST)]


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError):
        evaluate_roles([], POLICY, NOW.replace(tzinfo=None))


def test_role_findings_are_described_as_roles():
    assert describe("deploy", K.ROLE_UNUSED.value, "role") == \
        "role deploy has not been used for a long time"
    assert describe("deploy", K.ROLE_OPEN_TRUST.value, "trust").startswith("role deploy has a")
