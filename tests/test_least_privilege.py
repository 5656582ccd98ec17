"""The least-privilege check itself (tests/least_privilege.py, run after `make test`)."""

from tests import least_privilege


def test_the_policies_are_read_without_what_identity_center_does_itself():
    allowed = least_privilege.allowed_actions()
    assert {"iam:AddUserToGroup", "sso:CreateAccountAssignment",
            "identitystore:CreateGroupMembership"} <= allowed
    assert "iam:CreateRole" not in allowed  # Identity Center's, on an assignment


def test_both_directions_are_differences():
    allowed = least_privilege.allowed_actions()
    called = (allowed - {"iam:GetGroup"}) | {"iam:CreateUser"}
    assert least_privilege.differences(called) == ["called but not in the policies: iam:CreateUser",
                                             "allowed but never called: iam:GetGroup"]


def test_the_member_account_role_trusts_only_the_bot_with_its_external_id():
    import yaml

    template = yaml.safe_load(least_privilege.MEMBER_ACCOUNT.read_text())
    role = template["Resources"]["AccessbotRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": "AccessbotPrincipal"}}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert role["MaxSessionDuration"] == 3600  # the bot asks for an hour and renews


def test_the_member_account_role_allows_what_hygiene_does_in_every_account():
    import json

    own = json.loads((least_privilege.ROOT / "iam-policy.json").read_text())["Statement"]
    hygiene = {a for s in own if s["Sid"].startswith("CredentialHygiene") for a in s["Action"]}
    member = {s["Sid"]: s["Action"] for s in least_privilege.member_account_statements()}
    allowed = {a for actions in member.values()
               for a in ([actions] if isinstance(actions, str) else actions)}
    assert hygiene and hygiene <= allowed
    assert "iam:GetAccountAuthorizationDetails" in allowed  # owners' tags, administrators


def test_the_member_account_role_for_trust_policy_grants_changes_no_user():
    import yaml

    template = yaml.safe_load(least_privilege.MEMBER_ACCOUNT.read_text())
    [policy] = template["Resources"]["AccessbotRole"]["Properties"]["Policies"]
    trust_side = [s["Fn::If"][1] if "Fn::If" in s else s  # RoleGrants: trust_policy
                  for s in policy["PolicyDocument"]["Statement"]]
    actions = {a for s in trust_side for a in ([s["Action"]] if isinstance(s["Action"], str)
                                               else s["Action"])}
    assert "iam:UpdateAssumeRolePolicy" in actions and "iam:GetUser" in actions
    assert not {"iam:PutUserPolicy", "iam:DeleteUserPolicy"} & actions
