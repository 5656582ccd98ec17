"""The least-privilege check itself (tests/least_privilege.py, run after `make test`)."""

from tests import least_privilege


def test_the_policies_are_read_without_what_identity_center_does_itself():
    allowed = least_privilege.allowed_actions()
    assert {"iam:AddUserToGroup", "sso:CreateAccountAssignment",
            "identitystore:CreateGroupMembership"} <= allowed
    assert "iam:CreateRole" not in allowed  # Identity Center's, on an assignment


def test_both_directions_are_differences(monkeypatch):
    allowed = least_privilege.allowed_actions()
    called = (allowed - {"iam:GetGroup"}) | {"iam:CreateUser"}
    monkeypatch.setattr(least_privilege, "called_actions", lambda: called)
    assert least_privilege.differences() == ["called but not in the policies: iam:CreateUser",
                                             "allowed but never called: iam:GetGroup"]
