"""`accessbot doctor`'s AWS checks: moto for identity, groups and roles; botocore's Stubber
for iam:SimulatePrincipalPolicy, which moto lacks."""

import json
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from accessbot.aws import doctor
from accessbot.aws.doctor import Needs, aws_checks

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"


def answer_simulations(iam, denied: frozenset[str] = frozenset()) -> list[dict]:
    """Answer SimulatePrincipalPolicy on a moto client as IAM would: every action allowed
    but `denied`. Returns the calls' parameters."""
    asked: list[dict] = []

    def remember(params, **_):
        asked.append(dict(params))

    def respond(**_):
        results = [{"EvalActionName": action, "EvalResourceName": "*",
                    "EvalDecision": "implicitDeny" if action in denied else "allowed"}
                   for action in asked[-1]["ActionNames"]]
        return AWSResponse(None, 200, {}, None), {"EvaluationResults": results,
                                                  "IsTruncated": False}

    iam.meta.events.register("before-parameter-build.iam.SimulatePrincipalPolicy", remember)
    iam.meta.events.register("before-call.iam.SimulatePrincipalPolicy", respond)
    return asked


@pytest.fixture
def sts(iam):
    return boto3.client("sts", region_name="us-east-1")


def test_the_policy_grants_what_the_bot_calls_and_nothing_more():
    policy = json.loads((ROOT / "iam-policy.json").read_text())
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    used = {action for name in dir(doctor) if name.endswith("_ACTIONS")
            for action in getattr(doctor, name)}
    assert granted == used


def test_an_account_with_everything_passes(iam, admin, sts):
    admin.create_group(GroupName="ops")
    admin.create_role(RoleName="Db", AssumeRolePolicyDocument="{}", Path="/jit/")
    asked = answer_simulations(iam)
    checks = aws_checks(iam, sts, Needs(("ops",), ("Db",), hygiene=True))
    assert [c.line() for c in checks] == [
        f"✓ AWS identity: arn:aws:sts::{ACCOUNT}:user/moto",
        "✓ IAM group ops exists",
        "✓ IAM role Db exists",
        f"✓ IAM permissions: all 20 the bot uses are allowed to "
        f"arn:aws:iam::{ACCOUNT}:user/moto",
    ]
    by_resource = {tuple(a.get("ResourceArns", ["*"])): a["ActionNames"] for a in asked}
    assert by_resource[(f"arn:aws:iam::{ACCOUNT}:group/ops",)] == sorted(doctor.GROUP_ACTIONS)
    assert by_resource[(f"arn:aws:iam::{ACCOUNT}:role/jit/Db",)] == sorted(doctor.ROLE_ACTIONS)
    assert set(by_resource[(f"arn:aws:iam::{ACCOUNT}:user/*",)]) == \
        {*doctor.ROLE_GRANT_ACTIONS, *doctor.HYGIENE_USER_ACTIONS}
    assert set(by_resource[("*",)]) == {*doctor.ACCOUNT_ACTIONS, *doctor.HYGIENE_ACTIONS}
    assert by_resource[(f"arn:aws:iam::{ACCOUNT}:role/*",)] == sorted(
        doctor.HYGIENE_ROLE_ACTIONS)


def test_with_an_audit_bucket_the_upload_to_its_prefix_is_simulated(iam, sts):
    asked = answer_simulations(iam, denied=frozenset({"s3:PutObject"}))
    checks = aws_checks(iam, sts, Needs((), (), hygiene=False,
                                        audit_archive=("acme-evidence", "accessbot/audit/")))
    on_s3 = [a for a in asked if a.get("ResourceArns", [""])[0].startswith("arn:aws:s3")]
    assert [(a["ResourceArns"], a["ActionNames"]) for a in on_s3] == [
        (["arn:aws:s3:::acme-evidence/accessbot/audit/2026/01/01.jsonl"], ["s3:PutObject"])]
    assert not checks[-1].ok and "s3:PutObject on arn:aws:s3:::acme-evidence/" in checks[-1].line()


def test_a_missing_group_and_a_missing_role_are_each_a_cross(iam, admin, sts):
    answer_simulations(iam)
    lines = [c.line() for c in aws_checks(iam, sts, Needs(("ops",), ("Db",), hygiene=False))]
    assert lines[1:3] == [
        "✗ IAM group ops: does not exist: create it, or correct the resource's group",
        "✗ IAM role Db: does not exist: create it, or correct the resource's role",
    ]
    assert lines[3].startswith("✓ IAM permissions: all 3 ")  # the account-wide and user/* ones


def test_a_role_in_another_account_is_not_looked_up_here(iam, sts):
    answer_simulations(iam)
    role = "arn:aws:iam::999999999999:role/Db"
    checks = aws_checks(iam, sts, Needs((), (role,), hygiene=False))
    assert checks[1].ok and checks[1].what == (
        f"IAM role {role}: in another account, not checked from here (its trust policy must "
        f"trust account {ACCOUNT})")


def test_rejected_credentials_are_one_line(iam, aws_env, monkeypatch):
    sts = boto3.client("sts", region_name="us-east-1")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "InvalidClientTokenId",
                              "The security token included in the request is invalid.", 403)
        [check] = aws_checks(iam, sts, Needs(("ops",), (), hygiene=True))
    assert check.line() == ("✗ AWS credentials: rejected (InvalidClientTokenId: The security "
                            "token included in the request is invalid.): replace them, or check "
                            "the clock of this host")


def stubbed(identity: str) -> tuple:
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    sts_stub = Stubber(sts)
    sts_stub.add_response("get_caller_identity", {"Arn": identity, "Account": "111122223333",
                                                  "UserId": "AROAEXAMPLE:i-0abc"})
    return iam, Stubber(iam), sts, sts_stub


def simulated(actions: list[str], denied: set[str]) -> dict:
    return {"EvaluationResults": [
        {"EvalActionName": a, "EvalResourceName": "*",
         "EvalDecision": "implicitDeny" if a in denied else "allowed"} for a in actions],
        "IsTruncated": False}


def test_a_missing_permission_names_the_action_and_the_resource_stubbed():
    """An assumed role's session is simulated as its role (path included, via GetRole)."""
    session = "arn:aws:sts::111122223333:assumed-role/accessbot/i-0abc"
    iam, iam_stub, sts, sts_stub = stubbed(session)
    group_arn = "arn:aws:iam::111122223333:group/ops"
    role_arn = "arn:aws:iam::111122223333:role/service/accessbot"
    iam_stub.add_response("get_group", {
        "Group": {"GroupName": "ops", "GroupId": "AGPAEXAMPLE0000000001", "Path": "/",
                  "Arn": group_arn, "CreateDate": "2026-01-01T00:00:00Z"}, "Users": []},
        {"GroupName": "ops", "MaxItems": 1})
    iam_stub.add_response("get_role", {"Role": {
        "RoleName": "accessbot", "RoleId": "AROAEXAMPLE0000000001", "Path": "/service/",
        "Arn": role_arn, "CreateDate": "2026-01-01T00:00:00Z"}}, {"RoleName": "accessbot"})
    group_actions = sorted(doctor.GROUP_ACTIONS)
    iam_stub.add_response("simulate_principal_policy",
                          simulated(group_actions, {"iam:RemoveUserFromGroup"}),
                          {"PolicySourceArn": role_arn, "ActionNames": group_actions,
                           "ResourceArns": [group_arn]})
    iam_stub.add_response("simulate_principal_policy",
                          simulated(list(doctor.ACCOUNT_ACTIONS), set()),
                          {"PolicySourceArn": role_arn,
                           "ActionNames": list(doctor.ACCOUNT_ACTIONS)})
    with iam_stub, sts_stub:
        checks = aws_checks(iam, sts, Needs(("ops",), (), hygiene=False))
        iam_stub.assert_no_pending_responses()
    assert checks[-1].line() == (
        f"✗ IAM permissions: {role_arn} may not iam:RemoveUserFromGroup on {group_arn}: attach "
        "iam-policy.json to the bot (with your account id and the catalog's ARNs)")


def test_simulation_refused_says_which_permission_doctor_needs_stubbed():
    iam, iam_stub, sts, sts_stub = stubbed("arn:aws:iam::111122223333:user/accessbot")
    iam_stub.add_client_error("simulate_principal_policy", "AccessDenied", "not authorized", 403)
    with iam_stub, sts_stub:
        checks = aws_checks(iam, sts, Needs((), (), hygiene=False))
    assert checks[-1].line() == (
        "✗ IAM permissions: not checked (AccessDenied: not authorized): allow "
        "iam:SimulatePrincipalPolicy on arn:aws:iam::111122223333:user/accessbot "
        "(iam-policy.json)")


def test_each_account_is_checked_through_the_role_the_bot_assumes_there(iam, aws_env):
    from botocore.stub import Stubber

    from accessbot.aws.accounts import assumed_session
    from accessbot.aws.doctor import InAccount, account_checks
    from accessbot.services.catalog import Account

    prod = Account("prod", "222222222222", "arn:aws:iam::222222222222:role/accessbot", "ext-1")
    assumed_session(prod).client("iam").create_group(GroupName="ops")  # prod's, not ours

    checks = account_checks([InAccount(prod, groups=("ops", "db"), roles=("Deploy",))])

    assert [c.line() for c in checks] == [
        "✓ account prod (222222222222): role arn:aws:iam::222222222222:role/accessbot assumed",
        "✓ account prod (222222222222): IAM group ops exists",
        "✗ account prod (222222222222): IAM group db: does not exist: create it, or correct "
        "the resource's group",
        "✗ account prod (222222222222): IAM role Deploy: does not exist: create it, or "
        "correct the resource's role"]

    sts = boto3.client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("assume_role", "AccessDenied", "not authorized to perform: "
                              "sts:AssumeRole")
        [refused] = account_checks([InAccount(prod, groups=("ops",))], sts)
    assert not refused.ok
    assert refused.line().startswith("✗ account prod (222222222222): cannot assume "
                                     "arn:aws:iam::222222222222:role/accessbot (AccessDenied")
    assert "deploy/member-account-role.yaml" in refused.line()


def test_the_access_review_needs_its_user_actions_and_last_accessed_data(iam, admin, sts):
    asked = answer_simulations(iam)
    aws_checks(iam, sts, Needs((), (), hygiene=False, review=True))
    by_resource = {tuple(a.get("ResourceArns", ["*"])): a["ActionNames"] for a in asked}
    assert set(by_resource[(f"arn:aws:iam::{ACCOUNT}:user/*",)]) == \
        set(doctor.REVIEW_USER_ACTIONS)
    assert set(doctor.REVIEW_ADVISOR_ACTIONS) <= set(by_resource[("*",)])


def test_cloudtrail_enabled_checks_lookup_events_on_everything(iam, sts):
    asked = answer_simulations(iam)
    aws_checks(iam, sts, Needs((), (), hygiene=False, activity=True))
    by_resource = {tuple(a.get("ResourceArns", ["*"])): a["ActionNames"] for a in asked}
    assert "cloudtrail:LookupEvents" in by_resource[("*",)]
