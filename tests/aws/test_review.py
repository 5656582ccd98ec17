"""IamReview against moto: group members, direct administrators, a role's trustees, the
live re-check and the removals; read back with a plain client."""

import json

import pytest

from accessbot.aws.iam import trust_sid
from accessbot.aws.review import INLINE, AccountReview, IamReview, trustees
from accessbot.services.ports import AccountUnreachable, ProviderError

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
EVERYTHING = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
READ_S3 = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


def trust(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def managed(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto loads AWS managed policies (AdministratorAccess...) only when asked to."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")


@pytest.fixture
def review(iam):
    return IamReview(iam)


def test_a_group_and_its_members(review, admin):
    admin.create_group(GroupName="prod-admins")
    for user in ("alice", "bob"):
        admin.create_user(UserName=user)
        admin.add_user_to_group(GroupName="prod-admins", UserName=user)
    held = review.group("prod-admins")
    assert held.members == {"alice", "bob"} and held.arn.endswith(":group/prod-admins")
    assert review.group("nobody") is None


def test_direct_administrators_not_through_a_group(managed, review, admin):
    for user in ("attached", "custom", "inline", "reader", "via-group"):
        admin.create_user(UserName=user)
    admin.attach_user_policy(UserName="attached", PolicyArn=ADMIN_POLICY)
    custom = admin.create_policy(PolicyName="everything", PolicyDocument=EVERYTHING)
    admin.attach_user_policy(UserName="custom", PolicyArn=custom["Policy"]["Arn"])
    admin.put_user_policy(UserName="inline", PolicyName="god", PolicyDocument=EVERYTHING)
    admin.put_user_policy(UserName="reader", PolicyName="s3", PolicyDocument=READ_S3)
    admin.create_group(GroupName="admins")
    admin.attach_group_policy(GroupName="admins", PolicyArn=ADMIN_POLICY)
    admin.add_user_to_group(GroupName="admins", UserName="via-group")

    found = {(a.user, a.policy): a.how for a in review.direct_admins()}
    assert found == {
        ("attached", ADMIN_POLICY): "AdministratorAccess attached directly",
        ("custom", custom["Policy"]["Arn"]): "policy everything (allows * on *) attached "
                                             "directly",
        ("inline", INLINE + "god"): "inline policy god allows * on *"}


def test_the_live_recheck_and_the_removals(managed, review, admin):
    admin.create_user(UserName="ops")
    admin.create_group(GroupName="prod-admins")
    admin.add_user_to_group(GroupName="prod-admins", UserName="ops")
    admin.attach_user_policy(UserName="ops", PolicyArn=ADMIN_POLICY)
    admin.put_user_policy(UserName="ops", PolicyName="god", PolicyDocument=EVERYTHING)
    assert review.has_policy("ops", ADMIN_POLICY) and review.has_policy("ops", INLINE + "god")

    review.detach_admin("ops", ADMIN_POLICY)
    review.detach_admin("ops", INLINE + "god")
    review.remove_member("prod-admins", "ops")
    assert not review.has_policy("ops", ADMIN_POLICY)
    assert not review.has_policy("ops", INLINE + "god")
    assert admin.list_attached_user_policies(UserName="ops")["AttachedPolicies"] == []
    assert admin.get_group(GroupName="prod-admins")["Users"] == []
    # again: not a member, no such policy, no such user: success
    review.remove_member("prod-admins", "ops")
    review.detach_admin("ops", INLINE + "god")
    review.detach_admin("nobody", ADMIN_POLICY)
    assert not review.has_policy("nobody", ADMIN_POLICY)


def test_a_role_its_trustees_and_its_owner_tag(review, admin):
    policy = trust(
        {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root",
                                                  "arn:aws:iam::123456789012:user/carol"]},
         "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
         "Action": "sts:AssumeRole"},
        {"Sid": trust_sid(7), "Effect": "Allow",
         "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
         "Action": "sts:AssumeRole"})
    created = admin.create_role(RoleName="Deploy", AssumeRolePolicyDocument=policy,
                                Tags=[{"Key": "owner", "Value": "C0PLATFORM"}])
    held = review.role("Deploy")
    assert held.trustees == ("arn:aws:iam::111122223333:root",
                             "arn:aws:iam::123456789012:user/carol")
    assert held.owner_tag == "C0PLATFORM" and held.last_used is None
    assert review.role(created["Role"]["Arn"]).arn == created["Role"]["Arn"]
    assert review.role("arn:aws:iam::999999999999:role/Deploy") is None  # a namesake
    assert review.role("Nobody") is None


def test_trustees_of_odd_documents():
    assert trustees({"Statement": {"Effect": "Allow", "Principal": "*"}}) == ("*",)
    assert trustees({"Statement": [{"Effect": "Deny", "Principal": {"AWS": "x"}},
                                   {"Effect": "Allow", "Principal": {"Federated": "saml"}},
                                   {"Effect": "Allow", "Principal": {"AWS": "saml"}}]}) \
        == ("saml",)


def test_another_accounts_refused_role_is_said_as_such():
    class Refusing:
        def group(self, group):
            cause = Exception("denied")
            cause.operation_name = "AssumeRole"
            try:
                raise cause
            except Exception as exc:
                raise ProviderError("could not") from exc

    with pytest.raises(AccountUnreachable):
        AccountReview(Refusing(), "222222222222").group("prod-admins")
